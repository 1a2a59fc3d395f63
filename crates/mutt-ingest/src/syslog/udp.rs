//! Syslog over UDP: one message per datagram; a burst of datagrams is one submission, and a
//! refused one is dropped and counted (UDP has no way to push back).

use super::{ListenerConfig, Shared, SyslogError};
use socket2::{Domain, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// Datagrams gathered into one submission at most.
const BURST: usize = 512;

pub(super) fn spawn(
    cx: Arc<Shared>,
    config: &ListenerConfig,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), SyslogError> {
    let address = config.address;
    let bind = |source| SyslogError::Bind { address, source };
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, None).map_err(bind)?;
    if let Some(size) = config.recv_buffer_bytes {
        socket.set_recv_buffer_size(size).map_err(bind)?;
    }
    socket.set_nonblocking(true).map_err(bind)?;
    socket.bind(&address.into()).map_err(bind)?;
    let socket = UdpSocket::from_std(socket.into()).map_err(bind)?;
    let local = socket.local_addr().map_err(bind)?;
    let max = config.max_frame_bytes;
    let task = tokio::spawn(async move {
        tokio::select! {
            () = run(cx, socket, max) => {}
            () = shutdown.cancelled() => {}
        }
    });
    Ok((local, task))
}

async fn run(cx: Arc<Shared>, socket: UdpSocket, max: usize) {
    // One byte more than the limit tells an oversize datagram from one exactly at it.
    let mut buf = vec![0u8; max.saturating_add(1).min(65_536)];
    loop {
        let mut burst: Vec<(Vec<u8>, IpAddr)> = Vec::new();
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => keep(&cx, &mut burst, &buf[..n], from.ip(), max),
            Err(e) => {
                tracing::warn!(listener = cx.name(), error = %e, "syslog UDP receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        }
        while burst.len() < BURST {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => keep(&cx, &mut burst, &buf[..n], from.ip(), max),
                Err(_) => break,
            }
        }
        if burst.is_empty() {
            continue;
        }
        let mut submission = cx.submission(burst.iter().map(|(b, ip)| (b.as_slice(), *ip)));
        if let Some(rate) = &cx.rate {
            let n = submission.events.len() as u64;
            let allowed = rate.take(n);
            if allowed < n {
                submission.events.truncate(allowed as usize);
                cx.dropped("rate_limit", n - allowed);
            }
            if allowed == 0 {
                continue;
            }
        }
        let n = submission.events.len() as u64;
        if let Err(rejection) = cx.ingest.accept_admitted(submission).await {
            cx.dropped(rejection.metric_reason(), n);
        }
    }
}

fn keep(cx: &Shared, burst: &mut Vec<(Vec<u8>, IpAddr)>, datagram: &[u8], from: IpAddr, max: usize) {
    if datagram.len() > max {
        cx.dropped("oversize", 1);
        cx.warn.warn(from, cx.name(), "datagram larger than max_frame_bytes dropped");
        return;
    }
    if datagram.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return;
    }
    burst.push((datagram.to_vec(), from));
}
