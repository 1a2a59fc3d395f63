//! The whole pipeline as separate processes (private redis-server and PostgreSQL, a counting
//! webhook sink, `muttd ingestor`, alerters, forwarders):
//!
//!   mutt-pipeline bench [--seconds 60] [--single-rate N] [--batch-rate N] [--alerters 1] …
//!   mutt-pipeline chaos [--profile short|long]      # exits non-zero on any loss or duplicate
//!   mutt-pipeline soak [--minutes 30] [--rate 2000]  # a fault a minute; RSS, Redis keys, counts
//!   mutt-pipeline embedded [--seconds 30] [--durability full|normal]   # one `muttd run`, SQLite
//!
//! scripts/bench.sh and scripts/chaos.sh build the release binaries and run these.

use clap::{Parser, Subcommand};
use mutt_bench::pipeline::PipelineOptions;
use mutt_bench::report::{Durability, print_suite, suite};
use mutt_bench::scenario::{BenchPlan, ChaosProfile, chaos, report_json};
use std::path::PathBuf;

#[derive(Parser)]
struct Cli {
    /// The muttd binary.
    #[arg(long, global = true, default_value = "target/release/muttd")]
    muttd: PathBuf,
    /// Alerter processes.
    #[arg(long, global = true, default_value_t = 1)]
    alerters: usize,
    /// Batch loops per alerter process (`alerter.concurrency`): 4 overlaps the audit commits,
    /// which matters with PostgreSQL durable.
    #[arg(long, global = true, default_value_t = 4)]
    alerter_concurrency: usize,
    /// Forwarder processes.
    #[arg(long, global = true, default_value_t = 1)]
    forwarders: usize,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// A PostgreSQL server setting for the bench's server, `name=value` (repeatable), e.g.
    /// `--pg-setting shared_buffers=512MB`; the report lists the values the server used.
    #[arg(long = "pg-setting", global = true)]
    pg_settings: Vec<String>,
    /// A redis-server setting for the bench's server, `name=value` (repeatable), e.g.
    /// `--redis-setting auto-aof-rewrite-min-size=1gb`.
    #[arg(long = "redis-setting", global = true)]
    redis_settings: Vec<String>,
    /// Write each phase's deliveries to a file under this directory (one line each: arrival ms
    /// since the phase began, latency ms), per durability, to see when the slow ones came.
    #[arg(long, global = true)]
    latency_trace: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

/// The offered load of the bench phases (the same flags for both backends).
#[derive(clap::Args, Clone, Copy)]
struct Load {
    /// Offered events/s, single events.
    #[arg(long, default_value_t = 15_000)]
    single_rate: u64,
    /// Offered events/s in batches.
    #[arg(long, default_value_t = 30_000)]
    batch_rate: u64,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Offered events/s of the latency phase (0: none).
    #[arg(long, default_value_t = 2_000)]
    latency_rate: u64,
    /// Offered single events/s of the p99 phase (0: none).
    #[arg(long, default_value_t = 10_000)]
    p99_rate: u64,
    /// Seconds to wait after each phase for the backlog to drain.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
}

impl Load {
    fn plan(&self, seconds: u64) -> BenchPlan {
        let Load { single_rate, batch_rate, batch, latency_rate, p99_rate, drain_timeout } = *self;
        let drain_timeout = std::time::Duration::from_secs(drain_timeout);
        BenchPlan {
            seconds,
            single_rate,
            batch_rate,
            batch,
            latency_rate,
            p99_rate,
            drain_timeout,
            latency_trace: None,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Throughput, end-to-end latency, CPU per event and Redis commands per event, with
    /// production durability and with fsync off; prints the load generator's and the
    /// machine's ceilings too.
    Bench {
        /// Seconds of offered load per phase.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[command(flatten)]
        load: Load,
        /// `production`, `fsync-off` or `both` (production first).
        #[arg(long, default_value = "both")]
        durability: String,
    },
    /// `muttd run` on the embedded backend (one process, one SQLite file): the same phases.
    Embedded {
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[command(flatten)]
        load: Load,
        /// `full` (the default of muttd: fsync per commit group) or `normal`.
        #[arg(long, default_value = "full")]
        durability: String,
    },
    /// Faults under load; checks that nothing was lost or duplicated.
    Chaos {
        #[arg(long, default_value = "short")]
        profile: String,
    },
    /// Steady load for many minutes with a fault every minute (kill -9 a worker, restart Redis,
    /// stop PostgreSQL, failing webhook, in rotation); RSS and Redis figures before and after;
    /// exits non-zero on any loss or duplicate.
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Offered events/s.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Events per request.
        #[arg(long, default_value_t = 10)]
        batch: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)
    };
    tokio::select! {
        done = run(cli) => done,
        // Without this a stopped run left its Redis, PostgreSQL and muttd roles running: ending
        // the run's future drops their guards, which stop them.
        why = async { tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" } } => {
            eprintln!("mutt-pipeline: {why}: stopping the servers and roles it started");
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let opts = PipelineOptions {
        muttd: cli.muttd.clone(),
        alerters: cli.alerters.max(1),
        alerter_concurrency: cli.alerter_concurrency.max(1),
        forwarders: cli.forwarders.max(1),
        aof: false,
        pg_settings: cli.pg_settings.clone(),
        redis_settings: cli.redis_settings.clone(),
    };
    match cli.command {
        Cmd::Bench { seconds, load, durability } => {
            let plan = BenchPlan { latency_trace: cli.latency_trace.clone(), ..load.plan(seconds) };
            let Some(which) = Durability::parse(&durability) else {
                anyhow::bail!("unknown durability {durability:?} (production, fsync-off, both)");
            };
            let report = suite(opts, &plan, which).await?;
            if cli.json {
                println!("{}", report_json(&report));
            } else {
                print_suite(&report);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Embedded { seconds, load, durability } => {
            let plan =
                BenchPlan { latency_trace: cli.latency_trace.clone(), ..load.plan(seconds) }.traced_in("embedded");
            let report = mutt_bench::embedded::bench(&cli.muttd, &plan, &durability).await?;
            if cli.json {
                println!("{}", report_json(&report));
            } else {
                mutt_bench::embedded::print(&report);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Soak { minutes, rate, batch } => {
            let plan = mutt_bench::soak::SoakPlan { minutes: minutes.max(1), rate, batch: batch.max(1) };
            let report = mutt_bench::soak::soak(opts, &plan).await?;
            if cli.json {
                println!("{}", report_json(&report));
            } else {
                mutt_bench::soak::print(&report);
            }
            for p in &report.counts.problems {
                eprintln!("soak: {p}");
            }
            let ok = report.counts.problems.is_empty() && report.lost == 0;
            Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
        }
        Cmd::Chaos { profile } => {
            let profile = match profile.as_str() {
                "short" => ChaosProfile::short(),
                "long" => ChaosProfile::long(),
                other => anyhow::bail!("unknown profile {other:?} (short, long)"),
            };
            let report = chaos(opts, &profile).await?;
            println!("{}", report_json(&report));
            if report.problems.is_empty() {
                println!("chaos {}: nothing lost, nothing duplicated", profile.name);
                Ok(std::process::ExitCode::SUCCESS)
            } else {
                for p in &report.problems {
                    eprintln!("chaos {}: {p}", profile.name);
                }
                Ok(std::process::ExitCode::FAILURE)
            }
        }
    }
}
