//! The end-to-end benchmark of `muttd run` on the embedded backend: one process, one SQLite
//! file, the same rule set, event mix, load phases and counting webhook sink as the Redis +
//! PostgreSQL pipeline.

use crate::pipeline::{INGEST_KEY, Sink};
use crate::process::{Service, free_port, wait_healthy};
use crate::scenario::{BenchPlan, BenchRow, print_rows, run_phases};
use mutt_queue::Queue;
use mutt_queue::redis::KeySpace;
use mutt_queue::sqlite::SqliteQueue;
use mutt_sqlite::{Database, DbOptions};
use mutt_store::sqlite::SqliteStore;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, serde::Serialize)]
pub struct EmbeddedReport {
    pub durability: String,
    pub rows: Vec<BenchRow>,
    pub muttd_cpu_seconds: f64,
    pub muttd_peak_rss_mib: f64,
    pub data_file_mib: f64,
    /// This process over the phases: the load generator and the sink (and the drain checks'
    /// reads of the file), on the cores `muttd run` is measured on.
    pub bench_cpu_seconds: f64,
}

/// Seeds the data file the way an operator would before the first run: rules, development
/// hosts, device teams, and dynamic settings that keep shedding and meta-alerts out of the
/// counted result (as the Redis pipeline does).
async fn seed(db_path: &Path) -> anyhow::Result<()> {
    let db = Database::open(db_path, DbOptions::default())?;
    let store = SqliteStore::new(db.clone());
    store.migrate().await?;
    let queue = SqliteQueue::open(db, KeySpace::default()).await?;
    crate::pipeline::seed(&store, &queue).await
}

/// Queued + delayed, and leased messages, seen through one view of the file.
async fn leftovers(view: &SqliteQueue) -> Option<(u64, u64)> {
    let st = view.status().await.ok()?;
    Some((
        st.queues.iter().chain(&st.delayed_retries).map(|d| d.depth).sum(),
        st.processing_lists.iter().map(|p| p.depth).sum(),
    ))
}

pub async fn bench(muttd: &Path, plan: &BenchPlan, durability: &str) -> anyhow::Result<EmbeddedReport> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("mutt-data");
    let db_path: PathBuf = data_dir.join("mutt.db");
    seed(&db_path).await?;
    // Let the seeding handles close (and free the owner lock) before muttd takes the file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sink = Sink::start().await?;
    let port = free_port();
    let alerter_port = free_port();
    // Absolute: the process runs in the temporary directory.
    let muttd = std::fs::canonicalize(muttd).map_err(|e| anyhow::anyhow!("{}: {e}", muttd.display()))?;
    let mut cmd = Command::new(muttd);
    cmd.arg("run")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTT_DATA_DIR", &data_dir)
        .env("MUTT_EMBEDDED__DURABILITY", durability)
        .env("MUTT_FORWARDER__WEBHOOK_URL", &sink.url)
        .env("INGEST_API_KEY", INGEST_KEY)
        .env("WEBUI_API_KEY", "bench-webui-key")
        .env("MOOG_API_KEY", "pipeline-moog-key")
        .env("MUTT_INGESTOR__PORT", port.to_string())
        .env("MUTT_ALERTER__PORT", alerter_port.to_string())
        .env("MUTT_FORWARDER__PORT", "0")
        .env("MUTT_WEB__PORT", "0")
        // The benchmark offers HTTP only: no native listeners on the default ports.
        .env("MUTT_INGESTOR__RUN_SYSLOG_ADDRESS", "")
        .env("MUTT_INGESTOR__RUN_TRAPS_ADDRESS", "")
        .env("MUTT_INGESTOR__RATE_LIMIT_ENABLED", "false")
        .env("MUTT_INGESTOR__MAX_QUEUE_SIZE", "100000000")
        .env("MUTT_FORWARDER__RATE_LIMIT", "10000000")
        .env("MUTT_WORKER__BLOCK_TIMEOUT_SECS", "0.5")
        .env("MUTT_LOG__LEVEL", "error");
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("BENCH_MUTT_")) {
        cmd.env(k.trim_start_matches("BENCH_"), v);
    }
    let run = Service::spawn("muttd run (embedded)", cmd)?;
    wait_healthy(&format!("http://127.0.0.1:{port}/health"), Duration::from_secs(30)).await?;
    let ingest_url = format!("http://127.0.0.1:{port}/ingest");
    let view = SqliteQueue::attach(Database::open(&db_path, DbOptions::default())?, KeySpace::default()).await?;
    let meter =
        crate::cost::ProcessMeter { name: "muttd run".into(), pid: run.pid(), alerter_port: Some(alerter_port) };
    let bench_cpu = crate::process::cpu_seconds_of(std::process::id());
    let rows = run_phases(&ingest_url, &sink, plan, &meter, || async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if leftovers(&view).await.is_some_and(|(q, l)| q == 0 && l == 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let bench_cpu = crate::process::cpu_seconds_of(std::process::id()) - bench_cpu;
    let cpu = run.cpu_seconds();
    let rss = run.rss_kib().1 as f64 / 1024.0;
    let file_bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db_path.display())).ok())
        .map(|m| m.len())
        .sum();
    run.terminate();
    Ok(EmbeddedReport {
        durability: durability.to_owned(),
        rows,
        muttd_cpu_seconds: cpu,
        muttd_peak_rss_mib: rss,
        data_file_mib: file_bytes as f64 / (1024.0 * 1024.0),
        bench_cpu_seconds: bench_cpu,
    })
}

pub fn print(r: &EmbeddedReport) {
    println!("muttd run, embedded backend (one SQLite file, durability {})", r.durability);
    print_rows(&r.rows);
    crate::report::print_alerter_clock(&r.rows);
    println!(
        "muttd run: {:.1} CPU s, peak RSS {:.1} MiB; data file {:.1} MiB; load generator and sink: {:.1} CPU s",
        r.muttd_cpu_seconds, r.muttd_peak_rss_mib, r.data_file_mib, r.bench_cpu_seconds
    );
}
