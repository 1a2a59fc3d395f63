//! Operator commands that do one thing and exit; the bigger ones have a module of their own
//! (`config`: dynamic configuration, `slo`: the SLO report).

use crate::backend::{self, connect_queue_view, connect_store_admin};
use crate::cli::{SendArgs, StatusArgs};
use crate::config::Config;
use crate::secrets::{SecretSource, key_list};
use anyhow::{Context, Result, anyhow, bail};

pub mod config;
pub mod dlq;
pub mod partitions;
pub mod rules;
pub mod show;
pub mod silence;
pub mod slo;

pub async fn migrate(config: &Config, secrets: &dyn SecretSource) -> Result<()> {
    let store = backend::connect_store_unmigrated(config, secrets).await?;
    let applied = store.migrate().await.context("running migrations")?;
    if applied.is_empty() {
        println!("database is up to date");
    }
    for m in applied {
        println!("applied {m}");
    }
    // The migration creates three months ahead; a site may want more (RETENTION_PRECREATE_MONTHS).
    store.as_dyn().ensure_partitions(config.retention.precreate_months).await.context("creating partitions")?;
    Ok(())
}

pub async fn send(config: &Config, secrets: &dyn SecretSource, args: &SendArgs) -> Result<()> {
    let url = args.url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}/ingest", config.ingestor.port));
    let key = match &args.api_key {
        Some(k) => k.clone(),
        None => match key_list(secrets, "INGEST_API_KEY")?.first() {
            // `name:key`: the key part.
            Some(k) => mutt_service::auth::split_entry(k.expose()).1.to_owned(),
            // The key `muttd run` generated for the embedded backend.
            None => std::fs::read_to_string(config.data_dir.join("ingest-api-key"))
                .ok()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .ok_or_else(|| anyhow!("no API key: pass --api-key or set INGEST_API_KEY"))?,
        },
    };
    let mut event: serde_json::Map<String, serde_json::Value> = match &args.event {
        Some(json) => serde_json::from_str(json).context("--event is not a JSON object")?,
        None => serde_json::Map::from_iter([
            ("hostname".to_string(), args.hostname.clone().into()),
            ("message".to_string(), args.message.clone().into()),
        ]),
    };
    event
        .entry("timestamp")
        .or_insert_with(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
    let client = reqwest::Client::new();
    for _ in 0..args.count.max(1) {
        let resp = client
            .post(&url)
            .header("X-API-KEY", &key)
            .json(&event)
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        println!("{} {}", status.as_u16(), body);
        if !status.is_success() {
            bail!("the ingestor answered {status}");
        }
    }
    Ok(())
}

pub async fn status(config: &Config, secrets: &dyn SecretSource, args: &StatusArgs) -> Result<()> {
    let queue = connect_queue_view(config, secrets).await?;
    let status = queue.status().await?;
    // The forwarder's shared breaker (mutt:circuit_breaker:moogsoft:*), read as it reads it.
    // The embedded backend keeps it in the memory of `muttd run`.
    let circuit = match (backend::is_embedded(config), queue.breaker_state(mutt_forwarder::worker::BREAKER).await) {
        (true, _) => "in muttd run's memory: see mutt_circuit_breaker_state on the forwarder's /metrics".to_owned(),
        (_, Ok((state, failures))) => format!("{} ({failures} consecutive failures)", state.as_str()),
        (_, Err(e)) => format!("unknown ({e})"),
    };
    if args.json {
        let mut v = serde_json::to_value(&status)?;
        v["circuit_breaker"] = serde_json::json!({"moogsoft": circuit});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("QUEUES");
    for d in status.queues.iter().chain(&status.delayed_retries) {
        println!("  {:<40} {:>10}", d.name, d.depth);
    }
    println!("DEAD-LETTER QUEUES");
    for d in &status.dead_letter_queues {
        println!("  {:<40} {:>10}", d.name, d.depth);
    }
    println!("WORKERS");
    if status.processing_lists.is_empty() {
        println!("  (none)");
    }
    for p in &status.processing_lists {
        let state = if p.alive { "alive" } else { "DEAD (janitor will recover)" };
        println!("  {:<8} {:<30} leased {:>6}  {}", p.role, p.pod, p.depth, state);
    }
    println!("CIRCUIT BREAKER");
    println!("  moogsoft: {circuit}");
    Ok(())
}

pub async fn rules(config: &Config, secrets: &dyn SecretSource, cmd: &crate::cli::RulesCommand) -> Result<()> {
    use crate::cli::RulesCommand;
    let backend = connect_store_admin(config, secrets).await?;
    let store = backend.as_dyn();
    match cmd {
        RulesCommand::Import { file } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let parsed = crate::rules_file::parse(file, &text)?;
            let report = crate::rules_file::import(store.as_ref(), &parsed).await?;
            println!(
                "rules: {} created, {} already present; development hosts: {}; device teams: {}",
                report.rules_created, report.rules_skipped, report.development_hosts, report.device_teams
            );
            match connect_queue_view(config, secrets).await {
                Ok(q) => match q.publish_rules_changed().await? {
                    Some(n) => println!("asked running alerters to reload ({n} listening)"),
                    None => println!("a running `muttd run` uses the new rules from its next batch"),
                },
                Err(e) => {
                    println!(
                        "could not reach the queue to ask alerters to reload ({e:#}); they see the change before their next batch"
                    )
                }
            }
        }
        RulesCommand::Test { event } => {
            let value: serde_json::Value = serde_json::from_str(event).context("--event is not JSON")?;
            let serde_json::Value::Object(mut fields) = value else {
                bail!("--event must be a JSON object");
            };
            if let Err(e) = mutt_core::normalize::normalize(&mut fields, chrono::Utc::now()) {
                bail!("the ingestor would refuse this event: {e}");
            }
            let event = mutt_core::Event::from_value(serde_json::Value::Object(fields))?;
            let rules = mutt_core::RuleSet::compile(store.load_rules().await?);
            let report = mutt_core::rule::tester::test_event(&rules, &event);
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        RulesCommand::List => rules::list(store.as_ref()).await?,
    }
    Ok(())
}
