//! The short chaos profile (under 3 minutes) against real `muttd` processes: kill -9 of an
//! alerter and a forwarder, a Redis restart (AOF), PostgreSQL down 15 s, the receiver failing
//! 20 s and hanging 10 s, all under load. Counts must match exactly: nothing lost, and an
//! alert delivered twice only where at-least-once delivery allows it (posted by a forwarder
//! that was killed before it wrote the delivered id; see `scenario::duplicated_at_kill`).

use mutt_bench::pipeline::PipelineOptions;
use mutt_bench::scenario::{ChaosProfile, chaos, report_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_chaos_profile_loses_nothing_and_duplicates_only_at_a_forwarder_kill() {
    let opts = PipelineOptions {
        muttd: env!("CARGO_BIN_EXE_muttd").into(),
        alerters: 1,
        // Two batch loops: kill -9 also hits a process holding two leases.
        alerter_concurrency: 2,
        forwarders: 1,
        aof: true,
        pg_settings: Vec::new(),
        redis_settings: Vec::new(),
    };
    let report = chaos(opts, &ChaosProfile::short()).await.expect("chaos run");
    println!("{}", report_json(&report));
    assert!(report.accepted > 5_000, "the load ran: {} accepted", report.accepted);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
}
