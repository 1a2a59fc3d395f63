//! `muttd config show`: the configuration in force (defaults, file, the original's variables,
//! `MUTT_*`), how each connection is protected, and where each secret comes from. Secret values
//! never appear: passwords in URLs are redacted, and secrets are listed by source only.

use crate::config::{Config, tls};
use crate::secrets::{SECRET_NAMES, SecretSource};
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

pub fn run(config: &Config, secrets: &dyn SecretSource, json: bool) -> Result<()> {
    let settings = tls::redacted(serde_json::to_value(config).context("serialising the configuration")?);
    let connections = connections(config);
    let sources = secret_sources(secrets);
    if json {
        let out = json!({ "config": settings, "connections": connections, "secrets": sources });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("# muttd's configuration in force (defaults, file, environment); secrets redacted.");
    print!("{}", toml::to_string_pretty(&settings).context("writing the configuration as TOML")?);
    println!("\n# Connections:");
    for (name, how) in connections.as_object().into_iter().flatten() {
        println!("#   {name}: {}", how.as_str().unwrap_or_default());
    }
    println!("# Secrets (values never shown):");
    for (name, from) in sources.as_object().into_iter().flatten() {
        println!("#   {name}: {}", from.as_str().unwrap_or_default());
    }
    Ok(())
}

fn connections(config: &Config) -> Value {
    let embedded = crate::backend::is_embedded(config);
    let redis = if embedded { "embedded data file (no Redis)".to_owned() } else { config.redis.tls_description() };
    let postgres = if embedded {
        "embedded data file (no PostgreSQL)".to_owned()
    } else {
        tls::describe_postgres(&config.database)
    };
    json!({ "PostgreSQL": postgres, "Redis": redis })
}

fn secret_sources(secrets: &dyn SecretSource) -> Value {
    let mut out = Map::new();
    for name in SECRET_NAMES {
        let from = secrets.origin(name).unwrap_or_else(|| "not set".into());
        out.insert((*name).to_owned(), Value::from(from));
    }
    Value::Object(out)
}
