//! The `muttd` binary: parse the command line, load configuration, run.

use anyhow::{Context, Result};
use clap::Parser;
use muttd::app::{self, Role, StartOptions};
use muttd::cli::{Cli, Command};
use muttd::commands;
use muttd::config::{self, Config};
use muttd::secrets::EnvSecrets;
use std::collections::HashMap;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Completions and man pages need no configuration (the package build runs them).
    if let Some(done) = muttd::cli::generate_docs(&cli.command, &mut std::io::stdout().lock()) {
        return match done {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("muttd: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match config::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            // Status 1, as the original exited on an invalid configuration (spec §1.3).
            eprintln!("muttd: configuration error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    init_logging(&config);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let all_roles = matches!(cli.command, Command::Run(_));
    if let Some(n) = config.worker.runtime_threads(all_roles, env.get("TOKIO_WORKER_THREADS").map(String::as_str)) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("muttd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let secrets = EnvSecrets::new(env).with_file_permissions(config.secrets.file_permissions);
    match runtime.block_on(execute(cli.command, config, secrets)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "muttd failed");
            eprintln!("muttd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        // refinery announces every migration check at info; only its warnings matter here.
        // async-snmp warns once per bad or unauthenticated datagram (a flood would flood the
        // log); the trap listener counts those and logs them once a minute itself.
        .or_else(|_| EnvFilter::try_new(format!("{},refinery_core=warn,async_snmp=error", config.log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if config.log.json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}

async fn execute(command: Command, mut config: Config, secrets: EnvSecrets) -> Result<()> {
    // Vault, when VAULT_ADDR is set, is logged into and read before anything needs a secret.
    let env: HashMap<String, String> = std::env::vars().collect();
    let stop_vault = tokio_util::sync::CancellationToken::new();
    let secrets = muttd::secrets::vault::source(secrets, &env, config.secrets.file_permissions, stop_vault).await?;
    let (roles, migrate) = match command {
        Command::Migrate => return commands::migrate(&config, &secrets).await,
        Command::Send(args) => return commands::send(&config, &secrets, &args).await,
        Command::Status(args) => return commands::status(&config, &secrets, &args).await,
        Command::Rules(cmd) => return commands::rules(&config, &secrets, &cmd).await,
        Command::Config(cmd) => return commands::config::run(&config, &secrets, &cmd).await,
        Command::Slo(args) => return commands::slo::run(&config, &secrets, &args).await,
        Command::Partitions(cmd) => return commands::partitions::run(&config, &secrets, &cmd).await,
        Command::Retention(args) => return commands::partitions::retention(&config, &secrets, &args).await,
        Command::Dlq(cmd) => return commands::dlq::run(&config, &secrets, &cmd).await,
        Command::Silence(cmd) => return commands::silence::run(&config, &secrets, &cmd).await,
        Command::Remediation if !config.remediation.enabled => {
            // As the original: disabled means exit at once, successfully.
            println!("muttd: remediation is disabled (remediation.enabled, REMEDIATION_ENABLED)");
            return Ok(());
        }
        Command::Completions { .. } | Command::Man { .. } => return Ok(()), // done in main
        Command::Run(args) => {
            // `muttd run` listens for SNMP traps on 127.0.0.1:1162 unless configured otherwise.
            config.ingestor.traps = config.ingestor.trap_listeners(true);
            // And for syslog on 127.0.0.1:5514 (UDP and TCP).
            config.ingestor.syslog = config.ingestor.syslog_listeners(true);
            let roles = if args.roles.is_empty() { Role::RUN.to_vec() } else { args.roles };
            (roles, args.migrate)
        }
        Command::Ingestor => (vec![Role::Ingestor], false),
        Command::Alerter(f) => (vec![Role::Alerter], f.migrate),
        Command::Forwarder => (vec![Role::Forwarder], false),
        Command::Web(f) => (vec![Role::Web], f.migrate),
        Command::Remediation => (vec![Role::Remediation], false),
    };
    // Signal handlers before anything is printed: a supervisor (or test) that sends SIGTERM as
    // soon as it reads a "listening on" line must get a graceful stop, not the default kill.
    let mut signals = Signals::install()?;
    let app = tokio::select! {
        app = app::start(&config, &secrets, &roles, StartOptions { migrate }) => app?,
        // Start-up may wait for PostgreSQL or Redis; a stop request still ends it.
        why = signals.stop_requested() => {
            tracing::info!("{why} during start-up: stopping");
            return Ok(());
        }
    };
    signals.spawn_handlers(&app);
    for (role, addr) in &app.addresses {
        println!("muttd: {} listening on http://{addr}", role.as_str());
    }
    for (role, addr) in &app.probes {
        println!("muttd: {} probes (/health, /live) also on http://{addr}", role.as_str());
    }
    if app.addresses.len() > 1 {
        println!(
            "muttd: each address's /metrics has its own role's metrics; the process-wide queue metrics \
             (mutt_queue_depth, mutt_*_dlq_depth, mutt_alerter_queue_depth, mutt_janitor_recovered_total, \
             mutt_processing_lists_dead) are on the {}'s",
            app.process_metrics.as_str()
        );
    }
    app.wait().await
}

/// SIGTERM/SIGINT: graceful shutdown (leases handed back); a second one exits at once.
/// SIGHUP: reload the alerter's rules.
/// Installed before the roles start (from then on the default "terminate" no longer applies;
/// a signal that arrives during start-up waits in its stream) and handled once they run.
struct Signals {
    stop: StopSignals,
    hup: tokio::signal::unix::Signal,
}

struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = StopSignals {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        };
        Ok(Self { stop, hup: signal(SignalKind::hangup()).context("installing SIGHUP handler")? })
    }

    async fn stop_requested(&mut self) -> &'static str {
        self.stop.requested().await
    }

    /// One task owns the streams: a stop ends it, SIGHUP asks the alerter to reload its rules.
    fn spawn_handlers(mut self, app: &app::App) {
        let shutdown = app.shutdown.clone();
        let rules = app.alerter_rules.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    why = self.stop.requested() => {
                        tracing::info!("{why}: shutting down");
                        shutdown.cancel();
                        // A stop waits for the roles to hand back their leases, which can take a
                        // while with Redis or PostgreSQL away; a second request ends the process at
                        // once, as SIGKILL would (what is leased goes back through a janitor).
                        let again = self.stop.requested().await;
                        tracing::warn!("{again} during shutdown: exiting now; leased messages are left to a janitor");
                        std::process::exit(1);
                    }
                    Some(()) = self.hup.recv() => {
                        // Listener certificates (mutt_service::tls), then the alerter's rules.
                        let certificates = mutt_service::tls::reload_all();
                        match &rules {
                            Some(rules) => rules.request_reload(),
                            None if certificates == 0 => tracing::info!("SIGHUP: nothing to reload in this process"),
                            None => {}
                        }
                    }
                }
            }
        });
    }
}

impl StopSignals {
    /// Waits for SIGTERM or SIGINT; names the one that came.
    async fn requested(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
