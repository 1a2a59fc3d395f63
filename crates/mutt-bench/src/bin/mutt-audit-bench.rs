//! The audit write alone, A/B (issue 21): the UNNEST insert (the path before issue 21), the
//! store's binary COPY into event_audit_log, issue 21's COPY into a temporary table plus one
//! `INSERT … SELECT … ON CONFLICT DO NOTHING`, and variants (prepared or not, a CTE, batches
//! redelivered). Starts a private PostgreSQL per durability (production: fsync,
//! synchronous_commit and full_page_writes on; and fsync off), applies the migrations, and
//! writes batches of realistic audit rows (raw JSON 100–1,000 bytes) one after another on one
//! connection. Variants run interleaved, round after round, each on an emptied audit table
//! after a CHECKPOINT. Prints rows/s, ms per batch (p50/p99), the PostgreSQL backend's CPU µs
//! per row (/proc/<pid>/schedstat of the connection's backend), all of this server's
//! processes' CPU µs per row (WAL writer, checkpointer included; 10 ms ticks) and this
//! process's (the client's encoding).
//!
//!   nice -n 19 cargo build --release -p mutt-bench --bin mutt-audit-bench
//!   nice -n 19 target/release/mutt-audit-bench [--rows 20000] [--rounds 3] [--batches 100,500]

use chrono::Utc;
use clap::{Parser, ValueEnum};
use mutt_bench::process::cpu_seconds_of;
use mutt_core::EventId;
use mutt_store::postgres::AuditPath;
use mutt_store::postgres::audit_copy;
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::{AuditRecord, Store};
use rand::{Rng, SeedableRng};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls, Statement};

#[derive(Parser)]
struct Args {
    /// Rows per variant, batch size and round.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, value_delimiter = ',', default_value = "100,500")]
    batches: Vec<usize>,
    /// `production`, `fsync-off` or `both` (production first).
    #[arg(long, default_value = "both")]
    durability: String,
    /// Variants to run (all by default): unnest, copy, unnest-unprepared, unnest-cte, copy-temp,
    /// copy-temp-tx, unnest-redelivered, copy-redelivered.
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// How audit rows' rules are checked.
    #[arg(long, value_enum, default_value_t = RuleCheck::Row)]
    rule_check: RuleCheck,
    /// Connections writing at once, each its share of the rows (the alerter's batch loops:
    /// `alerter.concurrency`, 4 in the pipeline bench). The "again" variants use one.
    #[arg(long, default_value = "1")]
    connections: NonZeroUsize,
}

#[derive(Clone, Copy, ValueEnum)]
enum RuleCheck {
    /// As built: the foreign key, a key-share lock on the rule per audit row.
    Row,
    /// The experiment in sql/audit_rule_check_per_statement.sql: triggers that lock a batch's
    /// rules once per statement.
    Statement,
    /// Information only: what any check costs.
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// The store's UNNEST insert (prepared once per connection): the path before issue 21.
    Unnest,
    /// The store's COPY path: binary COPY into event_audit_log (UNNEST again for a batch that
    /// meets rows already there).
    Copy,
    /// UNNEST, the statement prepared again for every batch.
    UnnestUnprepared,
    /// Issue 21's proposal: BEGIN and binary COPY into a temporary table (ON COMMIT DELETE ROWS,
    /// created once per connection) pipelined, then INSERT … SELECT … ON CONFLICT DO NOTHING and
    /// COMMIT pipelined.
    CopyTemp,
    /// The same through tokio-postgres' transaction API: every step waits for its answer.
    CopyTempTx,
    /// A CTE instead of the temporary table: `WITH b AS (SELECT * FROM UNNEST(…))`, as UNNEST
    /// but with the arbiter's input materialised.
    UnnestCte,
    /// Redeliveries: every batch is in the table already (written before the measurement).
    UnnestAgain,
    CopyAgain,
}

const VARIANTS: [(Variant, &str); 8] = [
    (Variant::Unnest, "unnest"),
    (Variant::Copy, "copy"),
    (Variant::UnnestUnprepared, "unnest-unprepared"),
    (Variant::UnnestCte, "unnest-cte"),
    (Variant::CopyTemp, "copy-temp"),
    (Variant::CopyTempTx, "copy-temp-tx"),
    (Variant::UnnestAgain, "unnest-redelivered"),
    (Variant::CopyAgain, "copy-redelivered"),
];

const UNNEST_SQL: &str = "INSERT INTO event_audit_log (event_id, event_timestamp, hostname, matched_rule_id,
        handling_decision, forwarded_to_moog, raw_message, flap_suppressed, silenced_by)
     SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::int4[], $5::text[], $6::bool[],
                          $7::text[], $8::bool[], $9::int8[])
     ON CONFLICT (event_id, event_timestamp) DO NOTHING";

const UNNEST_CTE_SQL: &str = "WITH b AS MATERIALIZED (SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[],
        $4::int4[], $5::text[], $6::bool[], $7::text[], $8::bool[], $9::int8[]))
     INSERT INTO event_audit_log (event_id, event_timestamp, hostname, matched_rule_id,
        handling_decision, forwarded_to_moog, raw_message, flap_suppressed, silenced_by)
     SELECT * FROM b ON CONFLICT (event_id, event_timestamp) DO NOTHING";

/// Issue 21's temporary table, created once per connection.
const CREATE_TEMP_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS mutt_audit_batch (
        event_id uuid, event_timestamp timestamptz, hostname text, matched_rule_id int4,
        handling_decision text, forwarded_to_moog bool, raw_message text, flap_suppressed bool,
        silenced_by int8) ON COMMIT DELETE ROWS";

const COPY_TEMP_SQL: &str = "COPY pg_temp.mutt_audit_batch (event_id, event_timestamp, hostname, matched_rule_id,
        handling_decision, forwarded_to_moog, raw_message, flap_suppressed, silenced_by) FROM STDIN (FORMAT binary)";

const INSERT_TEMP_SQL: &str = "INSERT INTO event_audit_log (event_id, event_timestamp, hostname, matched_rule_id,
        handling_decision, forwarded_to_moog, raw_message, flap_suppressed, silenced_by)
     SELECT * FROM pg_temp.mutt_audit_batch ON CONFLICT (event_id, event_timestamp) DO NOTHING";

const RULES: i32 = 50;

/// Audit row `n`: 200 hosts, 50 rules, raw JSON of 100–1,000 bytes as the bench mix sends.
fn make_row(rng: &mut rand::rngs::StdRng, n: usize) -> AuditRecord {
    let host = format!("web-{:04}.dc{}.example.com", n % 200, n % 3);
    let len = rng.random_range(100..=1000usize);
    let event_id = EventId::new();
    let head = format!(
        r#"{{"hostname":"{host}","syslog_severity":3,"_event_id":"{event_id}","_correlation_id":"{}","message":""#,
        uuid::Uuid::new_v4()
    );
    let words = ["link", "down", "on", "gi0/1", "EVT-0042-DOWN", "interface", "flap", "peer", "10.1.2.3"];
    let mut message = String::new();
    while head.len() + message.len() + 2 < len {
        message.push_str(words[rng.random_range(0..words.len())]);
        message.push(' ');
    }
    let forwarded = rng.random_bool(0.5);
    AuditRecord {
        event_id,
        event_timestamp: Utc::now(),
        hostname: host,
        matched_rule_id: 1 + (n as i32 % RULES),
        handling_decision: if forwarded { "Page_and_ticket".into() } else { "Ignore".into() },
        forwarded_to_moog: forwarded,
        raw_message: format!("{head}{}\"}}", message.trim_end()),
        silenced_by: None,
        flap_suppressed: false,
    }
}

/// What one variant measured in one run.
#[derive(Default, Clone)]
struct Run {
    rows: u64,
    wall: Duration,
    batch_ms: Vec<f64>,
    backend_ns: u64,
    server_s: f64,
    client_s: f64,
}

impl Run {
    fn add(&mut self, o: &Run) {
        self.rows += o.rows;
        self.wall += o.wall;
        self.batch_ms.extend(&o.batch_ms);
        self.backend_ns += o.backend_ns;
        self.server_s += o.server_s;
        self.client_s += o.client_s;
    }

    fn pct(&self, p: f64) -> f64 {
        let mut v = self.batch_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
    }

    fn line(&self, name: &str) -> String {
        let per_row = |s: f64| s * 1e6 / self.rows.max(1) as f64;
        format!(
            "{name:<18} {:>9.0} {:>8.2} {:>8.2} {:>10.2} {:>10.2} {:>10.2}",
            self.rows as f64 / self.wall.as_secs_f64().max(1e-9),
            self.pct(0.5),
            self.pct(0.99),
            per_row(self.backend_ns as f64 / 1e9),
            per_row(self.server_s),
            per_row(self.client_s),
        )
    }
}

/// CPU nanoseconds a process has run (schedstat: nanosecond resolution, unlike stat's ticks).
fn schedstat_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// The parent of `pid` (the postmaster of a backend).
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name's closing parenthesis: state, then the parent's pid.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

/// CPU seconds of the postmaster and all its children: this server's share of the machine.
fn server_cpu_seconds(postmaster: u32) -> f64 {
    let mut total = cpu_seconds_of(postmaster);
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if parent_of(pid) == postmaster {
            total += cpu_seconds_of(pid);
        }
    }
    total
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One thread: this process's CPU is the client's cost of encoding and sending batches.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let variants: Vec<(Variant, &str)> = if args.variants.is_empty() {
        VARIANTS.to_vec()
    } else {
        VARIANTS.iter().copied().filter(|(_, n)| args.variants.iter().any(|a| a == n)).collect()
    };
    let modes: &[bool] = match args.durability.as_str() {
        "both" => &[true, false],
        "production" => &[true],
        "fsync-off" => &[false],
        other => anyhow::bail!("unknown durability {other:?} (production, fsync-off, both)"),
    };
    println!(
        "mutt-audit-bench: {} rows per variant, batch and round; {} rounds; interleaved; private PostgreSQL",
        args.rows, args.rounds
    );
    for &durable in modes {
        bench_server(&args, &variants, durable).await?;
    }
    Ok(())
}

/// One PostgreSQL server: every batch size and variant, `rounds` times, then the table.
async fn bench_server(args: &Args, variants: &[(Variant, &str)], durable: bool) -> anyhow::Result<()> {
    let pg =
        if durable { mutt_testkit::PostgresServer::start_durable()? } else { mutt_testkit::PostgresServer::start()? };
    let (admin, conn) = tokio_postgres::connect(&pg.url(), NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute("CREATE DATABASE mutt").await?;
    let url = pg.url().replace("/postgres", "/mutt");
    let (admin, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 1 })?.migrate().await?;
    let mut settings = Vec::new();
    for name in ["fsync", "synchronous_commit", "full_page_writes", "server_version"] {
        settings.push(format!("{name}={}", admin.query_one(&format!("SHOW {name}"), &[]).await?.get::<_, String>(0)));
    }
    for i in 0..RULES {
        admin
            .execute(
                "INSERT INTO alert_rules (match_string, prod_handling, dev_handling, team_assignment)
                 VALUES ($1, 'Page_and_ticket', 'Ignore', 'team')",
                &[&format!("EVT-{i:04}-DOWN")],
            )
            .await?;
    }
    match args.rule_check {
        RuleCheck::Statement => {
            // The file drops the foreign key itself.
            admin.batch_execute(include_str!("../../sql/audit_rule_check_per_statement.sql")).await?;
            settings.push("rules checked per statement by triggers (the experiment)".into());
        }
        RuleCheck::None => {
            admin.batch_execute("ALTER TABLE event_audit_log DROP CONSTRAINT fk_event_audit_matched_rule").await?;
            settings.push("rules not checked".into());
        }
        RuleCheck::Row => settings.push("rules checked per row by the foreign key".into()),
    }
    settings.push(format!("{} connection(s) writing", args.connections));
    let mut totals: Vec<Vec<Run>> = vec![vec![Run::default(); variants.len()]; args.batches.len()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    for _ in 0..args.rounds {
        for (b, &batch) in args.batches.iter().enumerate() {
            for (v, &(variant, _)) in variants.iter().enumerate() {
                admin.batch_execute("TRUNCATE event_audit_log; CHECKPOINT").await?;
                let rows: Vec<AuditRecord> = (0..args.rows).map(|n| make_row(&mut rng, n)).collect();
                let run = run_variant(&url, variant, &rows, batch, args.connections).await?;
                totals[b][v].add(&run);
            }
        }
    }
    let n = admin.query_one("SELECT count(*) FROM event_audit_log", &[]).await?.get::<_, i64>(0);
    anyhow::ensure!(n as usize == args.rows, "the last run left {n} rows, not {}", args.rows);
    println!("\n{} ({})", if durable { "production durability" } else { "fsync=off" }, settings.join(", "));
    for (b, &batch) in args.batches.iter().enumerate() {
        println!(
            "batch {batch:<4}          rows/s  p50 ms  p99 ms  PG backend  PG server  client\n{:<18} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10}",
            "", "", "", "", "µs/row", "µs/row", "µs/row"
        );
        for (v, &(_, name)) in variants.iter().enumerate() {
            println!("{}", totals[b][v].line(name));
        }
    }
    Ok(())
}

/// One variant's connection: the store (its pool of one) or a client with its statements.
struct Conn {
    store: Option<PgStore>,
    client: Client,
    /// The temporary table's COPY and INSERT, prepared once.
    temp: Option<(Statement, Statement)>,
    /// The backend serving the writes.
    pid: u32,
}

/// A fresh connection for one variant.
async fn connection(url: &str, variant: Variant) -> anyhow::Result<Conn> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    let path = match variant {
        Variant::Unnest | Variant::UnnestAgain => Some(AuditPath::Unnest),
        Variant::Copy | Variant::CopyAgain => Some(AuditPath::Copy),
        _ => None,
    };
    let store = match path {
        Some(path) => {
            Some(PgStore::new(&PostgresConfig { url: url.into(), password: None, pool_size: 1 })?.with_audit_path(path))
        }
        None => None,
    };
    let mut temp = None;
    if matches!(variant, Variant::CopyTemp | Variant::CopyTempTx) {
        client.batch_execute(CREATE_TEMP_TABLE).await?;
        temp = Some((client.prepare(COPY_TEMP_SQL).await?, client.prepare(INSERT_TEMP_SQL).await?));
    }
    let pid: i32 = match &store {
        Some(s) => s.pool().get().await?.query_one("SELECT pg_backend_pid()", &[]).await?.get(0),
        None => client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0),
    };
    Ok(Conn { store, client, temp, pid: pid as u32 })
}

/// Writes `rows` in batches of `batch` the way `variant` says, measuring.
async fn run_variant(
    url: &str,
    variant: Variant,
    rows: &[AuditRecord],
    batch: usize,
    connections: NonZeroUsize,
) -> anyhow::Result<Run> {
    let again = matches!(variant, Variant::UnnestAgain | Variant::CopyAgain);
    if again {
        let first = PgStore::new(&PostgresConfig { url: url.into(), password: None, pool_size: 1 })?;
        for chunk in rows.chunks(batch) {
            first.write_audit(chunk).await?;
        }
        // Its backend must be gone before the server's CPU is sampled (a child that exits in
        // between takes its CPU seconds out of the sum).
        drop(first);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let connections = if again { 1 } else { connections.get() };
    // Each connection its contiguous share, whole batches; the first batch of each warms the
    // connection up (statements, temporary table) outside the measurement.
    let share = rows.len().div_ceil(connections).div_ceil(batch) * batch;
    let mut writers = Vec::new();
    for part in rows.chunks(share.max(1)) {
        let mut c = connection(url, variant).await?;
        let (warm, rest) = part.split_at(batch.min(part.len()));
        write(&mut c, variant, warm).await?;
        writers.push((c, rest));
    }
    let pids: Vec<u32> = writers.iter().map(|(c, _)| c.pid).collect();
    let Some(&first) = pids.first() else { anyhow::bail!("no rows to write (--rows 0)") };
    let postmaster = parent_of(first);
    let backend_ns = || pids.iter().map(|&p| schedstat_ns(p)).sum::<u64>();
    let (backend0, server0, client0) = (backend_ns(), server_cpu_seconds(postmaster), own_cpu());
    let started = Instant::now();
    let runs = futures_util::future::try_join_all(writers.into_iter().map(|(mut c, part)| async move {
        let mut run = Run::default();
        for chunk in part.chunks(batch) {
            let t = Instant::now();
            let n = write(&mut c, variant, chunk).await?;
            run.batch_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let expected = if again { 0 } else { chunk.len() };
            anyhow::ensure!(n as usize == expected, "{variant:?} wrote {n} rows of {}", chunk.len());
            run.rows += chunk.len() as u64;
        }
        Ok::<_, anyhow::Error>(run)
    }))
    .await?;
    // The writers' runs hold rows and batch times only; the clocks are the whole run's.
    let mut run = Run::default();
    for r in &runs {
        run.add(r);
    }
    run.wall = started.elapsed();
    run.backend_ns = backend_ns() - backend0;
    run.server_s = server_cpu_seconds(postmaster) - server0;
    run.client_s = own_cpu() - client0;
    Ok(run)
}

fn own_cpu() -> f64 {
    cpu_seconds_of(std::process::id())
}

async fn write(c: &mut Conn, v: Variant, rows: &[AuditRecord]) -> anyhow::Result<u64> {
    match (v, &c.store, &c.temp) {
        (_, Some(store), _) => Ok(store.write_audit(rows).await?),
        (Variant::UnnestUnprepared, ..) => unnest_sql(&c.client, UNNEST_SQL, rows).await,
        (Variant::UnnestCte, ..) => unnest_sql(&c.client, UNNEST_CTE_SQL, rows).await,
        (Variant::CopyTemp, _, Some((copy, insert))) => copy_temp(&c.client, copy, insert, rows).await,
        (Variant::CopyTempTx, _, Some((copy, insert))) => copy_temp_tx(&mut c.client, copy, insert, rows).await,
        _ => anyhow::bail!("{v:?}: its connection was not set up"),
    }
}

/// UNNEST by `sql`, prepared again for every batch (`unnest-unprepared`, `unnest-cte`).
async fn unnest_sql(client: &Client, sql: &str, rows: &[AuditRecord]) -> anyhow::Result<u64> {
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.event_id.as_uuid()).collect();
    let times: Vec<_> = rows.iter().map(|r| r.event_timestamp).collect();
    let hosts: Vec<&str> = rows.iter().map(|r| r.hostname.as_str()).collect();
    let rules: Vec<i32> = rows.iter().map(|r| r.matched_rule_id).collect();
    let decisions: Vec<&str> = rows.iter().map(|r| r.handling_decision.as_str()).collect();
    let forwarded: Vec<bool> = rows.iter().map(|r| r.forwarded_to_moog).collect();
    let raws: Vec<&str> = rows.iter().map(|r| r.raw_message.as_str()).collect();
    let suppressed: Vec<bool> = rows.iter().map(|r| r.flap_suppressed).collect();
    let silenced: Vec<Option<i64>> = rows.iter().map(|r| r.silenced_by).collect();
    Ok(client
        .execute(sql, &[&ids, &times, &hosts, &rules, &decisions, &forwarded, &raws, &suppressed, &silenced])
        .await?)
}

/// Issue 21's proposal, pipelined: BEGIN with the COPY's start, INSERT with COMMIT.
async fn copy_temp(client: &Client, copy: &Statement, insert: &Statement, rows: &[AuditRecord]) -> anyhow::Result<u64> {
    use futures_util::SinkExt;
    let data = audit_copy::encode(rows)?;
    let (begin, sink) = tokio::join!(client.batch_execute("BEGIN"), client.copy_in::<_, bytes::Bytes>(copy));
    begin?;
    let mut sink = std::pin::pin!(sink?);
    sink.send(data).await?;
    sink.as_mut().finish().await?;
    let (inserted, commit) = tokio::join!(client.execute(insert, &[]), client.batch_execute("COMMIT"));
    commit?;
    Ok(inserted?)
}

async fn copy_temp_tx(
    client: &mut Client,
    copy: &Statement,
    insert: &Statement,
    rows: &[AuditRecord],
) -> anyhow::Result<u64> {
    use futures_util::SinkExt;
    let data = audit_copy::encode(rows)?;
    let tx = client.transaction().await?;
    let sink = tx.copy_in::<_, bytes::Bytes>(copy).await?;
    let mut sink = std::pin::pin!(sink);
    sink.send(data).await?;
    sink.as_mut().finish().await?;
    let n = tx.execute(insert, &[]).await?;
    tx.commit().await?;
    Ok(n)
}
