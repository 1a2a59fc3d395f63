//! Rule matching alone, in process: the pipeline bench's 100 rules (`contains`, severity,
//! `oid_prefix`, `regex`) against its event mix (messages of 100–1,000 bytes), and against the
//! same mix with a non-ASCII character in every message (which takes the case-insensitive
//! regex set instead of the lower-cased one). Prints nanoseconds per event of
//! `RuleSet::first_match` and how many events matched a rule.
//!
//!   cargo build --release -p mutt-bench && target/release/mutt-rules-bench

use clap::Parser;
use mutt_core::Event;
use mutt_core::rule::{Rule, RuleSet, RuleSnapshot};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Events in the mix.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Passes over the mix per measurement.
    #[arg(long, default_value_t = 20)]
    rounds: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rules: Vec<Rule> = mutt_bench::pipeline::rules().into_iter().zip(1..).map(|(r, id)| r.into_rule(id)).collect();
    let set = RuleSet::compile(RuleSnapshot { rules, ..Default::default() });
    println!("mutt-rules-bench: {} active rules, {} events, {} passes", set.len(), args.events, args.rounds);
    println!("{:<34} {:>10} {:>10}", "messages", "ns/event", "matched");
    for (name, accent) in [("pipeline mix (ASCII)", false), ("pipeline mix + one non-ASCII char", true)] {
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let events = (0..args.events)
            .map(|seq| {
                let (mut e, _) = mutt_bench::pipeline::event(seq, &timestamp);
                if accent {
                    e.message.push_str(" é");
                }
                Ok(Event::from_value(serde_json::to_value(&e)?)?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut matched = 0u64;
        let started = Instant::now();
        for _ in 0..args.rounds {
            matched = events.iter().filter(|e| set.first_match(e).is_some()).count() as u64;
        }
        let ns = started.elapsed().as_nanos() as f64 / (args.events as f64 * f64::from(args.rounds));
        println!("{name:<34} {ns:>10.0} {matched:>10}");
    }
    Ok(())
}
