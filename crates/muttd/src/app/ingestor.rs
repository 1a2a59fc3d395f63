//! The ingestor role: the HTTP ingest API, and the native SNMP trap and syslog listeners
//! beside it.

use super::{Context, Slot, Started};
use crate::config::TrapSection;
use anyhow::{Context as _, Result};
use mutt_ingest::snmp::{SnmpMetrics, TrapListener, TrapListenerConfig, TrapUser};

pub(super) async fn start(cx: &Context<'_>, slot: Slot) -> Result<Started> {
    let config = cx.config;
    // The embedded backend generates a key on first use, unless auth is explicitly off.
    let generated = (cx.embedded && !config.ingestor.auth_disabled).then_some("ingest-api-key");
    let api_keys = super::api_keys(cx, "INGEST_API_KEY", generated)?;
    let ingest = config.ingestor.to_ingest_config(api_keys);
    let registry = slot.metrics.clone();
    let (ingest, router) = mutt_ingest::service(cx.queue.clone(), cx.coordination.clone(), ingest, slot.metrics)?;
    follow_api_keys(cx, &ingest);
    let traps = start_traps(cx, &ingest, &registry).await?;
    start_syslog(cx, &ingest, &registry).await?;
    let tls = super::listener::load_tls("ingestor", &config.ingestor.tls())?;
    let server = cx.serve_tls(slot.listener, router, tls);
    let shutdown = cx.shutdown.clone();
    Ok(Started::task(super::spawn_server(async move {
        let listeners = futures_util::future::join_all(traps.into_iter().map(|t| t.run(shutdown.clone())));
        tokio::join!(server, listeners).0
    })))
}

/// A rotated INGEST_API_KEY (Vault, re-read periodically) replaces the accepted keys at once;
/// a key removed from the secret is refused from then on. An empty value keeps the old keys
/// (an ingestor that refuses everything is worse than one that still takes the old key).
fn follow_api_keys(cx: &Context<'_>, ingest: &mutt_ingest::Ingest) {
    let ingest = ingest.clone();
    crate::secrets::vault::follow(cx.secrets, "INGEST_API_KEY", move |value| {
        let entries: Vec<mutt_core::Secret> = value
            .map(|v| {
                v.expose()
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(mutt_core::Secret::new)
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            tracing::warn!("INGEST_API_KEY is now empty or gone; the keys in use stay");
            return;
        }
        ingest.set_api_keys(super::listener::named_keys("INGEST_API_KEY", entries));
    });
}

// --- SNMP traps -------------------------------------------------------------------------

/// Binds every configured trap listener (before the role counts as started, so a port in use
/// fails startup) and prints where each listens.
async fn start_traps(
    cx: &Context<'_>,
    ingest: &mutt_ingest::Ingest,
    registry: &mutt_service::Metrics,
) -> Result<Vec<TrapListener>> {
    let sections = &cx.config.ingestor.traps;
    if sections.is_empty() {
        return Ok(Vec::new());
    }
    let metrics = SnmpMetrics::register(registry);
    let mut listeners = Vec::new();
    for section in sections {
        let config = trap_config(cx, section)?;
        let listener = TrapListener::bind(config, ingest.clone(), metrics.clone()).await?;
        println!("muttd: ingestor SNMP traps ({}) on udp://{}", section.name, listener.local_addr());
        tracing::info!(listener = %section.name, address = %listener.local_addr(), "SNMP trap listener started");
        listeners.push(listener);
    }
    Ok(listeners)
}

fn trap_config(cx: &Context<'_>, s: &TrapSection) -> Result<TrapListenerConfig> {
    let host = s.address.as_deref().unwrap_or(&cx.config.bind_address);
    let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, s.port))
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("ingestor.traps {}: no address {host}:{}", s.name, s.port))?;
    let secret = |name: &Option<String>, what: &str| -> Result<Option<mutt_core::Secret>> {
        let Some(name) = name else { return Ok(None) };
        let value = cx.secrets.get(name)?;
        Ok(Some(value.with_context(|| format!("ingestor.traps {}: {what} secret {name} is not set", s.name))?))
    };
    // A protocol and its password secret go together: both or neither.
    let credential = |user: &str, protocol: &Option<String>, secret_name: &Option<String>, what: &str| match (
        protocol,
        secret(secret_name, what)?,
    ) {
        (Some(p), Some(pw)) => Ok(Some((p.clone(), pw))),
        (None, None) => Ok(None),
        _ => Err(anyhow::anyhow!(
            "ingestor.traps {} user {user}: the {what} needs both its protocol and its password secret",
            s.name
        )),
    };
    let mut users = Vec::new();
    for u in &s.users {
        let auth = credential(&u.name, &u.auth_protocol, &u.auth_password_secret, "auth password")?;
        let privacy = credential(&u.name, &u.priv_protocol, &u.priv_password_secret, "privacy password")?;
        users.push(TrapUser { name: u.name.clone(), auth, privacy });
    }
    let engine_id = match &s.engine_id {
        Some(hex) => Some(
            mutt_ingest::snmp::parse_hex(hex)
                .with_context(|| format!("ingestor.traps {}: engine_id is not hex", s.name))?,
        ),
        None => None,
    };
    Ok(TrapListenerConfig {
        name: s.name.clone(),
        address,
        communities: s.communities.iter().map(|c| mutt_core::Secret::new(c.clone())).collect(),
        users,
        engine_id,
        engine_file: Some(cx.config.data_dir.join(format!("snmp-engine-{}", s.name))),
        max_messages_per_second: s.max_messages_per_second,
    })
}

// --- Syslog -----------------------------------------------------------------------------

/// Binds every configured syslog listener (a port in use fails startup) and prints where each
/// listens; they run until shutdown.
async fn start_syslog(cx: &Context<'_>, ingest: &mutt_ingest::Ingest, registry: &mutt_service::Metrics) -> Result<()> {
    use mutt_ingest::syslog::{self, ListenerConfig, Protocol, SyslogMetrics};
    let sections = &cx.config.ingestor.syslog;
    if sections.is_empty() {
        return Ok(());
    }
    let metrics = SyslogMetrics::register(registry);
    for s in sections {
        let host = s.address.as_deref().unwrap_or(&cx.config.bind_address);
        let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, s.port))
            .ok()
            .and_then(|mut a| a.next())
            .with_context(|| format!("ingestor.syslog: no address {host}:{}", s.port))?;
        let protocol = match s.protocol {
            crate::config::SyslogProtocol::Udp => Protocol::Udp,
            crate::config::SyslogProtocol::Tcp => Protocol::Tcp,
            crate::config::SyslogProtocol::Tls => Protocol::Tls,
        };
        let config = ListenerConfig {
            tls_cert_file: s.tls_cert_file.clone(),
            tls_key_file: s.tls_key_file.clone(),
            tls_client_ca_file: s.tls_client_ca_file.clone(),
            tls_client_auth: s.tls_client_auth.into(),
            max_frame_bytes: s.max_frame_bytes,
            recv_buffer_bytes: s.recv_buffer_bytes,
            max_connections: s.max_connections,
            idle_timeout: std::time::Duration::from_secs(s.idle_timeout_secs),
            max_messages_per_second: s.max_messages_per_second,
            ..ListenerConfig::new(address, protocol)
        };
        let listener = syslog::spawn(ingest.clone(), metrics.clone(), config, cx.shutdown.clone()).await?;
        let proto = protocol.as_str();
        println!("muttd: ingestor syslog ({proto}) on {proto}://{}", listener.local_addr);
    }
    Ok(())
}
