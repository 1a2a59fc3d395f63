//! The native listeners of a release `muttd run --roles ingestor` (embedded backend, nothing
//! draining the queue): SNMP v2c traps offered at a fixed rate from a Rust sender, syslog
//! over UDP offered at 50,000 messages/s, and syslog over TCP (100,000 messages on one
//! connection). Prints what was offered, queued, dropped by MUTT (counted) and lost before
//! it (socket buffer), and the rates.
//!
//! `cargo build --release -p muttd -p mutt-bench && nice -n 19 target/release/mutt-listener-bench`
//! (`--muttd PATH`, default `target/release/muttd`; `--trap-rate N`, default 20000 traps/s;
//! `--recv-buffer BYTES`: the syslog UDP listener's `recv_buffer_bytes`, default the system's).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LINE: &[u8] = b"<134>Dec  1 10:00:00 bench-host app[42]: LINK-DOWN interface Gi0/1 changed state to down";

struct Muttd {
    child: Child,
    _dir: tempfile::TempDir,
    http: SocketAddr,
    traps: SocketAddr,
    udp: SocketAddr,
    tcp: SocketAddr,
}

impl Drop for Muttd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `recv_buffer`: the syslog UDP listener's `recv_buffer_bytes` (`None`: the system default).
fn start(muttd: &str, recv_buffer: Option<usize>) -> anyhow::Result<Muttd> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("mutt.toml");
    let buffer = recv_buffer.map(|b| format!(", recv_buffer_bytes = {b}")).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "[ingestor]\nsyslog = [{{ address = \"127.0.0.1\", port = 0, protocol = \"udp\"{buffer} }},\n  {{ address = \"127.0.0.1\", port = 0, protocol = \"tcp\" }}]\n"
        ),
    )?;
    // Absolute: the process runs in the temporary directory.
    let muttd = std::fs::canonicalize(muttd).map_err(|e| anyhow::anyhow!("{muttd}: {e}"))?;
    let mut child = Command::new(muttd)
        .arg("-c")
        .arg(&config)
        .args(["run", "--roles", "ingestor"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INGEST_API_KEY", "listener-bench-key")
        .env("MUTT_INGESTOR__PORT", "0")
        .env("MUTT_INGESTOR__RUN_TRAPS_ADDRESS", "127.0.0.1:0")
        .env("MUTT_INGESTOR__MAX_QUEUE_SIZE", "100000000")
        .env("MUTT_LOG__LEVEL", "error")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?);
    let (mut http, mut traps, mut udp, mut tcp) = (None, None, None, None);
    let addr = |s: &str| s.trim().parse::<SocketAddr>().ok();
    let mut lines = stdout.lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(rest) = line.strip_prefix("muttd: ingestor listening on http://") {
            http = addr(rest.split('/').next().unwrap_or_default());
        } else if let Some((_, a)) = line.split_once(") on udp://") {
            if line.contains("SNMP traps") { traps = addr(a) } else { udp = addr(a) }
        } else if let Some((_, a)) = line.split_once(") on tcp://") {
            tcp = addr(a);
        }
        if let (Some(http), Some(traps), Some(udp), Some(tcp)) = (http, traps, udp, tcp) {
            // Keep reading stdout so the pipe never fills.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(Muttd { child, _dir: dir, http, traps, udp, tcp });
        }
    }
    anyhow::bail!("muttd run exited before printing its addresses")
}

fn metrics(http: SocketAddr) -> String {
    let get = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(http)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    };
    get().unwrap_or_default()
}

/// The sum of the series whose line starts with `prefix`.
fn sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Waits until `prefix`'s sum stops moving (2 s) or reaches `target`; (value, when it last moved).
fn settle(http: SocketAddr, prefix: &str, target: u64) -> (u64, Instant) {
    let (mut last, mut moved) = (sum(&metrics(http), prefix), Instant::now());
    while moved.elapsed() < Duration::from_secs(2) && last < target {
        std::thread::sleep(Duration::from_millis(50));
        let now = sum(&metrics(http), prefix);
        if now != last {
            (last, moved) = (now, Instant::now());
        }
    }
    (last, moved)
}

/// BER: `tag`, definite length, `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.extend([0x81, content.len() as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A v2c trap (community `public`): sysUpTime, snmpTrapOID (a Cisco syslog trap), sysName.
fn v2c_trap(request_id: u32) -> Vec<u8> {
    let vb = |oid: &[u8], value: Vec<u8>| tlv(0x30, &[tlv(0x06, oid), value].concat());
    let varbinds = [
        vb(&[0x2b, 6, 1, 2, 1, 1, 3, 0], tlv(0x43, &[0x12, 0x34])),
        vb(&[0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0], tlv(0x06, &[0x2b, 6, 1, 4, 1, 9, 9, 41, 2, 0, 1])),
        vb(&[0x2b, 6, 1, 2, 1, 1, 5, 0], tlv(0x04, b"bench-switch-01")),
    ]
    .concat();
    let pdu = [tlv(0x02, &request_id.to_be_bytes()), tlv(0x02, &[0]), tlv(0x02, &[0]), tlv(0x30, &varbinds)].concat();
    tlv(0x30, &[tlv(0x02, &[1]), tlv(0x04, b"public"), tlv(0xa7, &pdu)].concat())
}

/// Sends `datagram(n)` to `to` at `rate`/s for `secs` (in 10 ms ticks); (sent, seconds taken).
fn offer(to: SocketAddr, rate: u64, secs: u64, datagram: impl Fn(u64) -> Vec<u8>) -> anyhow::Result<(u64, f64)> {
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let started = Instant::now();
    let mut sent = 0u64;
    for tick in 0..secs * 100 {
        for _ in 0..rate / 100 {
            if sender.send_to(&datagram(sent), to).is_ok() {
                sent += 1;
            }
        }
        let next = started + Duration::from_millis((tick + 1) * 10);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok((sent, started.elapsed().as_secs_f64()))
}

fn report(what: &str, sent: u64, offered_for: f64, queued: u64, dropped: u64, took: f64) {
    println!(
        "{what}: offered {sent} in {offered_for:.2} s ({:.0}/s); queued {queued} ({:.0}/s), dropped by MUTT {dropped}, lost before MUTT (socket buffer) {}",
        sent as f64 / offered_for,
        queued as f64 / took,
        sent.saturating_sub(queued + dropped)
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let muttd = arg("--muttd").unwrap_or_else(|| "target/release/muttd".into());
    let trap_rate: u64 = arg("--trap-rate").and_then(|r| r.parse().ok()).unwrap_or(20_000);
    let recv_buffer = arg("--recv-buffer").and_then(|r| r.parse().ok());
    let m = start(&muttd, recv_buffer)?;
    let events = "mutt_ingest_events_total";
    let dropped = "mutt_ingest_dropped_total{";

    let started = Instant::now();
    let (sent, offered_for) = offer(m.traps, trap_rate, 5, |n| v2c_trap(n as u32))?;
    let (queued, last) = settle(m.http, r#"mutt_ingest_snmp_notifications_total{listener="snmp",kind="trap"}"#, sent);
    let lost_or_dropped = sum(&metrics(m.http), dropped);
    report("SNMP v2c traps", sent, offered_for, queued, lost_or_dropped, last.duration_since(started).as_secs_f64());

    let before = (sum(&metrics(m.http), events), sum(&metrics(m.http), dropped));
    let started = Instant::now();
    let (sent, offered_for) = offer(m.udp, 50_000, 3, |_| LINE.to_vec())?;
    let (queued, last) = settle(m.http, events, before.0 + sent);
    let drops = sum(&metrics(m.http), dropped) - before.1;
    report("syslog UDP", sent, offered_for, queued - before.0, drops, last.duration_since(started).as_secs_f64());

    let n = 100_000u64;
    let before = sum(&metrics(m.http), events);
    let payload: Vec<u8> = (0..n).flat_map(|_| LINE.iter().copied().chain([b'\n'])).collect();
    let started = Instant::now();
    let mut conn = TcpStream::connect(m.tcp)?;
    conn.write_all(&payload)?;
    conn.flush()?;
    let (queued, last) = settle(m.http, events, before + n);
    let took = last.duration_since(started).as_secs_f64();
    println!(
        "syslog TCP: {} of {n} messages over one connection queued in {took:.2} s ({:.0}/s)",
        queued - before,
        (queued - before) as f64 / took
    );
    Ok(())
}
