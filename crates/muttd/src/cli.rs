//! The command line. Parsing only; `main` runs what was parsed.

use crate::app::Role;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Configuration: defaults, then the TOML file (--config or MUTT_CONFIG), then the original MUTT's
environment variables (REDIS_HOST, REDIS_PORT, DB_HOST, DB_NAME, MOOG_WEBHOOK_URL,
INGEST_QUEUE_NAME, POD_NAME, …), then MUTT_<SECTION>__<KEY> variables (e.g.
MUTT_REDIS__URL=redis://127.0.0.1:6379/0, MUTT_FORWARDER__WEBHOOK_URL=…). Later sources win.

Secrets come from environment variables or from files named by <NAME>_FILE:
INGEST_API_KEY (comma-separated for several keys), WEBUI_API_KEY, MOOG_API_KEY,
REDIS_PASS_CURRENT / REDIS_PASS_NEXT, DB_PASS_CURRENT / DB_PASS_NEXT.";

/// `muttd --version`: the crate's version and the git commit it was built from (build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("MUTTD_BUILD_COMMIT"), ")");

/// MUTT: syslog and SNMP-trap events in, rules decide, audit trail written, alerts to Moogsoft.
#[derive(Debug, Parser)]
#[command(name = "muttd", version = VERSION, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short = 'c', global = true, env = "MUTT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role (ingestor, alerter, forwarder, web, remediation) in one process.
    Run(RunArgs),
    /// Run the HTTP ingest API (POST /ingest) in front of the ingest queue.
    Ingestor,
    /// Run the rule engine: ingest queue → audit trail + alert queue.
    Alerter(MigrateFlag),
    /// Run the delivery worker: alert queue → webhook (Moogsoft).
    Forwarder,
    /// Run the management API (rules).
    Web(MigrateFlag),
    /// Run the remediation worker: replays dead letters once what failed is healthy again,
    /// parks poison in mutt:dlq:dead, trims old dead letters (also part of `muttd run`).
    Remediation,
    /// Apply database migrations and create the monthly audit partitions, then exit.
    Migrate,
    /// Post a test event to a running ingestor.
    Send(SendArgs),
    /// Print queue depths, dead-letter depths, delayed retries and workers' heartbeats.
    Status(StatusArgs),
    /// Manage alert rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Read and change dynamic configuration (`mutt:config:<key>`), read live by running
    /// workers; every change is recorded in config_audit_log.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Evaluate the service-level objectives (spec §10.5) against the configured Prometheus
    /// (PROMETHEUS_URL) or, without one, the roles' own /metrics counters.
    Slo(SloArgs),
    /// The audit trail's monthly partitions: list with rows and size, create the coming
    /// months', drop expired ones (SQLite: rows by month, chunked deletes).
    #[command(subcommand)]
    Partitions(crate::commands::partitions::PartitionsCommand),
    /// Apply retention once (audit trail, archive, config audit) with a progress bar; --dry-run
    /// prints what it would remove.
    Retention(crate::commands::partitions::RetentionArgs),
    /// The dead-letter queues: list, show, replay, park, purge, export, trim.
    #[command(subcommand)]
    Dlq(crate::commands::dlq::DlqCommand),
    /// Silences and weekly maintenance windows: matching events are audited, not forwarded.
    #[command(subcommand)]
    Silence(crate::commands::silence::SilenceCommand),
    /// Print the shell completion script for bash, zsh or fish (installed by the package).
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff); with --out-dir, write muttd.1 and one page per command there.
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Writes what `muttd completions` and `muttd man` print; `None` for the other commands.
pub fn generate_docs(command: &Command, out: &mut dyn std::io::Write) -> Option<std::io::Result<()>> {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    Some(match command {
        Command::Completions { shell } => {
            // try_generate: a closed pipe is an error to report, not a panic.
            use clap_complete::Generator;
            cli.set_bin_name("muttd");
            cli.build();
            shell.try_generate(&cli, out)
        }
        Command::Man { out_dir: None } => clap_mangen::Man::new(cli).render(out),
        Command::Man { out_dir: Some(dir) } => clap_mangen::generate_to(cli, dir),
        _ => return None,
    })
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a value; exits 1 when it is not set.
    Get { key: String },
    /// Set a value after checking it against the catalogue (type, range, warn < shed); prints
    /// the old and the new one.
    Set {
        key: String,
        value: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        /// Set a key the catalogue does not know (or a value it refuses), e.g. for a tool of
        /// your own that reads `mutt:config:<key>`.
        #[arg(long)]
        force: bool,
    },
    /// Remove a value: its readers fall back to their default.
    Delete {
        key: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Every key of the catalogue with the value in force, its default and where the value
    /// comes from (dynamic, muttd's configuration, default), then any other key set.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The configuration in force (defaults, file, environment) as TOML, how each connection
    /// is protected, and where each secret comes from; secret values are never printed.
    Show {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// The latest recorded changes, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Import rules, development hosts and device teams from a YAML or JSON file, then ask
    /// running alerters to reload. Rules equal to existing ones are skipped.
    Import {
        /// The file (`.json` is read as JSON, anything else as YAML).
        file: PathBuf,
    },
    /// List every rule (active or not) by priority.
    List,
    /// Show which rule would handle an example event, its prod and dev handling, and why each
    /// higher-priority rule did not match. Uses the rules in the database now.
    Test {
        /// The event as JSON, e.g. '{"hostname":"router1","message":"LINK-DOWN on Gi0/1"}'.
        #[arg(long)]
        event: String,
    },
}

#[derive(Debug, Args)]
pub struct MigrateFlag {
    /// Apply database migrations before starting.
    #[arg(long)]
    pub migrate: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Apply database migrations before starting.
    #[arg(long)]
    pub migrate: bool,
    /// Only these roles (comma-separated); default all.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Ingest URL; default http://127.0.0.1:<ingestor.port>/ingest.
    #[arg(long)]
    pub url: Option<String>,
    /// API key; default the INGEST_API_KEY secret (its first key).
    #[arg(long, env = "MUTT_SEND_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The event's hostname.
    #[arg(long, default_value = "muttd-send")]
    pub hostname: String,
    /// The event's message.
    #[arg(long, default_value = "CRITICAL: test event from muttd send")]
    pub message: String,
    /// A whole event as JSON (overrides --hostname/--message; timestamp added if missing).
    #[arg(long)]
    pub event: Option<String>,
    /// How many copies to send.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

#[derive(Debug, Args)]
pub struct SloArgs {
    /// Print the report as JSON (the shape of GET /api/v1/slo) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when an SLO is critical (as the original's slo_checker).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subcommands() {
        let c = Cli::try_parse_from(["muttd", "run", "--migrate", "--roles", "ingestor,alerter"]).unwrap();
        match c.command {
            Command::Run(a) => {
                assert!(a.migrate);
                assert_eq!(a.roles, vec![Role::Ingestor, Role::Alerter]);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["muttd", "run", "--roles", "nope"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["muttd", "-c", "x.toml", "status"]).unwrap().command,
            Command::Status(_)
        ));
    }

    #[test]
    fn version_names_the_commit_and_docs_are_generated_without_configuration() {
        assert!(VERSION.starts_with(concat!(env!("CARGO_PKG_VERSION"), " (commit ")), "{VERSION}");
        let generated = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let mut out = Vec::new();
            generate_docs(&cli.command, &mut out).expect("a docs command").unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(generated(&["muttd", "completions", "bash"]).contains("complete -F _muttd"));
        assert!(generated(&["muttd", "completions", "zsh"]).starts_with("#compdef muttd"));
        assert!(generated(&["muttd", "completions", "fish"]).contains("complete -c muttd"));
        let man = generated(&["muttd", "man"]);
        assert!(man.contains(".TH muttd 1") && man.contains("muttd\\-run(1)"), "{man}");
        let cli = Cli::try_parse_from(["muttd", "status"]).unwrap();
        assert!(generate_docs(&cli.command, &mut Vec::new()).is_none());
    }

    #[test]
    fn help_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
