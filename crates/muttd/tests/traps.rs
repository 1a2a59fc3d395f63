//! The native SNMP trap listener of `muttd run` with net-snmp's own clients: `snmptrap` v1,
//! v2c and v3 authPriv (SHA/AES) and `snmpinform` v2c and v3 each reach the audit trail with
//! the trap's fields and the example OID rule's decision; a wrong community and a wrong v3
//! password are refused; an inform is not acknowledged while the ingest queue refuses. Without
//! `snmptrap`/`snmpinform` (Debian package `snmp`; `scripts/test.sh` installs it) the tests
//! say so and do nothing.

mod common;

use common::KillOnDrop;
use mutt_sqlite::rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const CISCO_PREFIX: &str = ".1.3.6.1.4.1.9.9.41.2";
const CISCO_TRAP: &str = ".1.3.6.1.4.1.9.9.41.2.0.1";
const SYS_NAME: &str = ".1.3.6.1.2.1.1.5.0";
const AUTH_PASS: &str = "trap-auth-pass-1";
const PRIV_PASS: &str = "trap-priv-pass-1";

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}

fn have_net_snmp(test: &str) -> bool {
    let ok = find("snmptrap").is_some() && find("snmpinform").is_some();
    if !ok {
        mutt_testkit::skip_or_fail(
            test,
            "snmptrap/snmpinform not installed (apt-get install snmp; scripts/test.sh does)",
        );
    }
    ok
}

/// `muttd run` on the embedded backend in `dir` with the example rules; its trap address.
struct Muttd {
    _child: KillOnDrop,
    traps: SocketAddr,
    /// The ingestor's HTTP address (its `/metrics`).
    http: Option<SocketAddr>,
    dir: PathBuf,
}

impl Muttd {
    /// `muttd run` with the example rules imported.
    fn start(dir: &Path, config: Option<&str>) -> Self {
        let run = Self::launch(dir, config);
        let out = run.muttd(&["rules", "import", &format!("{REPO}/examples/rules.yaml")]);
        assert!(out.status.success(), "rules import: {}", String::from_utf8_lossy(&out.stderr));
        run
    }

    /// `muttd run` in `dir` (again, after a stop: same data directory).
    fn launch(dir: &Path, config: Option<&str>) -> Self {
        let mut cmd = common::muttd(dir);
        cmd.env("INGEST_API_KEY", "traps-test-key").env("MUTT_LOG__LEVEL", "warn");
        cmd.env("TRAP_AUTH", AUTH_PASS).env("TRAP_PRIV", PRIV_PASS);
        if let Some(text) = config {
            let path = dir.join("mutt.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("-c").arg(&path);
        }
        // The log, kept for the tests of what is logged (appended across a restart).
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("muttd.log")).unwrap();
        cmd.stderr(log);
        let (child, stdout) = common::spawn_run(&mut cmd);
        let (mut traps, mut ingestor) = (None, None);
        stdout.read_until("the trap listener's and the ingestor's addresses", |line| {
            let trap_line = line.strip_prefix("muttd: ingestor SNMP traps (");
            if let Some((_, addr)) = trap_line.and_then(|l| l.split_once(") on udp://")) {
                traps = Some(addr.trim().parse().expect("an address"));
            }
            if let Some(("ingestor", addr)) = common::listening(line) {
                ingestor = Some(addr);
            }
            traps.is_some() && ingestor.is_some()
        });
        Self { _child: child, traps: traps.unwrap(), http: ingestor, dir: dir.to_owned() }
    }

    fn metric(&self, prefix: &str) -> u64 {
        metric(&http_get(self.http.expect("the ingestor's address"), "/metrics"), prefix)
    }

    fn muttd(&self, args: &[&str]) -> Output {
        common::muttd(&self.dir).args(args).output().expect("run muttd")
    }

    /// `program <options> --clientaddr=<from> <listener> <pdu>` (net-snmp without any user
    /// configuration or MIBs).
    fn send(&self, program: &str, from: &str, options: &[&str], pdu: &[&str]) -> Output {
        let home = self.dir.join("net-snmp");
        std::fs::create_dir_all(home.join("persist")).unwrap();
        Command::new(program)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("SNMPCONFPATH", &home)
            .env("SNMP_PERSISTENT_DIR", home.join("persist"))
            .env("MIBS", "")
            .args(options)
            .arg(format!("--clientaddr={from}"))
            .arg(self.traps.to_string())
            .args(pdu)
            .output()
            .expect("run net-snmp")
    }

    fn sent(&self, program: &str, from: &str, options: &[&str], pdu: &[&str]) {
        let out = self.send(program, from, options, pdu);
        assert!(out.status.success(), "{program} {options:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn db(&self) -> PathBuf {
        self.dir.join("mutt-data/mutt.db")
    }

    /// Waits (10 s at most) until a log line contains all of `words`.
    fn wait_logged(&self, words: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.logged(words) == 0 {
            assert!(Instant::now() < deadline, "never logged: {words:?}: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("muttd.log")).unwrap_or_default()
    }

    /// How many log lines contain all of `words`.
    fn logged(&self, words: &[&str]) -> usize {
        self.log().lines().filter(|l| words.iter().all(|w| l.contains(w))).count()
    }
}

/// The audit row of the event from `host`: (rule id, handling decision, the event).
fn audited(db: &Path, host: &str) -> Option<(Option<i64>, String, Value)> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let (rule, handling, raw) = c
        .query_row(
            "SELECT matched_rule_id, handling_decision, raw_message FROM event_audit_log WHERE hostname = ?1",
            [host],
            |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)),
        )
        .ok()?;
    Some((rule, handling, serde_json::from_str(&raw.unwrap_or_default()).unwrap_or(Value::Null)))
}

fn cisco_rule(db: &Path) -> i64 {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row("SELECT id FROM alert_rules WHERE trap_oid = ?1", [CISCO_PREFIX], |r| r.get(0)).unwrap()
}

/// Waits (30 s at most) for the event from `host`, then checks the fields every trap carries.
fn expect_event(run: &Muttd, what: &str, host: &str, source_ip: &str, version: &str, pdu: &str) -> Value {
    let db = run.db();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (rule, handling, event) = loop {
        if let Some(row) = audited(&db, host) {
            break row;
        }
        assert!(Instant::now() < deadline, "{what} (hostname {host}) never audited");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(event["trap_oid"], CISCO_TRAP, "{what}: {event}");
    assert_eq!(event["source"], "snmp", "{what}: {event}");
    assert_eq!(event["source_ip"], source_ip, "{what}: {event}");
    assert_eq!(event["snmp_version"], version, "{what}: {event}");
    assert_eq!(event["snmp_pdu"], pdu, "{what}: {event}");
    assert!(event["uptime"].is_u64(), "{what}: {event}");
    let ts = event["timestamp"].as_str().unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'), "{what}: {event}");
    let message = event["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&format!("{host} {CISCO_TRAP}")), "{what}: message {message:?}");
    assert_eq!(rule, Some(cisco_rule(&db)), "{what}: the example rule {CISCO_PREFIX} matched: {event}");
    assert_eq!(handling, "Page_and_ticket", "{what}: {event}");
    assert!(!event.to_string().contains("public"), "{what}: the community is never in the event: {event}");
    event
}

fn varbind<'a>(event: &'a Value, oid: &str) -> Option<&'a Value> {
    event["varbinds"].as_array()?.iter().find(|b| b["oid"] == oid)
}

#[test]
fn muttd_run_takes_v1_v2c_traps_and_informs_and_refuses_a_wrong_community() {
    if !have_net_snmp("muttd_run_takes_v1_v2c_traps_and_informs_and_refuses_a_wrong_community") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = Muttd::start(dir.path(), None);
    let v2c = ["-v", "2c", "-c", "public"];
    // Garbage and truncated datagrams first: refused quietly, no stall of the traps after them.
    let junk = std::net::UdpSocket::bind("127.0.0.20:0").unwrap();
    for n in 0..V2C_TRAP.len() {
        junk.send_to(&V2C_TRAP[..n], run.traps).unwrap();
        junk.send_to(&[0x30, 0x82, 0xff, 0xff, n as u8], run.traps).unwrap();
    }
    run.sent("snmptrap", "127.0.0.5", &v2c, &["", CISCO_TRAP, SYS_NAME, "s", "core-sw \"1\""]);
    // A wrong community: refused, never audited (checked after later traps are).
    run.sent("snmptrap", "127.0.0.16", &["-v", "2c", "-c", "private"], &["", CISCO_TRAP]);
    // v1 enterprise-specific trap 1 of the Cisco enterprise, agent-addr 127.0.0.7.
    run.sent("snmptrap", "127.0.0.8", &["-v", "1", "-c", "public"], &[CISCO_PREFIX, "127.0.0.7", "6", "1", ""]);
    // A proxy names the device in snmpTrapAddress.0.
    run.sent("snmptrap", "127.0.0.9", &v2c, &["", CISCO_TRAP, ".1.3.6.1.6.3.18.1.3.0", "a", "192.0.2.33"]);
    run.sent("snmpinform", "127.0.0.15", &[&v2c[..], &["-t", "2", "-r", "2"]].concat(), &["", CISCO_TRAP]);

    let event = expect_event(&run, "v2c trap", "127.0.0.5", "127.0.0.5", "v2c", "trap");
    let name = varbind(&event, SYS_NAME).unwrap_or_else(|| panic!("sysName varbind: {event}"));
    assert_eq!(name["value"], "core-sw \"1\"", "{event}");
    assert_eq!(name["type"], "STRING", "net-snmp's type names, as the snmptrapd handler posts them: {event}");
    expect_event(&run, "v1 trap", "127.0.0.7", "127.0.0.8", "v1", "trap");
    expect_event(&run, "proxied v2c trap", "192.0.2.33", "127.0.0.9", "v2c", "trap");
    expect_event(&run, "v2c inform", "127.0.0.15", "127.0.0.15", "v2c", "inform");
    assert!(audited(&run.db(), "127.0.0.16").is_none(), "a trap with a wrong community was accepted");
    // Logged once a minute per source: one line for each misbehaving sender.
    run.sent("snmptrap", "127.0.0.16", &["-v", "2c", "-c", "private"], &["", CISCO_TRAP]);
    run.sent("snmptrap", "127.0.0.19", &["-v", "2c", "-c", "private"], &["", CISCO_TRAP]);
    run.wait_logged(&["unknown community", "127.0.0.19"]);
    run.wait_logged(&["malformed SNMP datagram", "127.0.0.20"]);
    assert_eq!(run.logged(&["unknown community", "127.0.0.16"]), 1, "once a minute per source: {}", run.log());
    assert_eq!(run.logged(&["malformed SNMP datagram", "127.0.0.20"]), 1, "once a minute per source: {}", run.log());
    let metrics = http_get(run.http.unwrap(), "/metrics");
    let line = |prefix: &str| metrics.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    assert_eq!(
        line(r#"mutt_ingest_snmp_errors_total{listener="snmp",kind="community"}"#)
            .as_deref()
            .and_then(|l| l.split(' ').nth(1)),
        Some("3"),
        "{metrics}"
    );
    assert!(metric(&metrics, r#"mutt_ingest_snmp_errors_total{listener="snmp",kind="malformed"}"#) > 0, "{metrics}");
    assert!(line(r#"mutt_ingest_snmp_notifications_total{listener="snmp",kind="trap"}"#).is_some(), "{metrics}");
}

/// `snmptrap -v 2c -c public … '' .1.3.6.1.4.1.9.9.41.2.0.1 .1.3.6.1.2.1.1.5.0 s hi` as
/// datagram bytes (uptime 0, request id 0x12345678).
const V2C_TRAP: &[u8] = &[
    0x30, 0x55, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa7, 0x48, 0x02, 0x04, 0x12, 0x34,
    0x56, 0x78, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x3a, 0x30, 0x0d, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01,
    0x01, 0x03, 0x00, 0x43, 0x01, 0x00, 0x30, 0x19, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x06, 0x03, 0x01, 0x01, 0x04, 0x01,
    0x00, 0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x09, 0x09, 0x29, 0x02, 0x00, 0x01, 0x30, 0x0e, 0x06, 0x08, 0x2b,
    0x06, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00, 0x04, 0x02, b'h', b'i',
];

/// A rough traps/s figure: v2c traps as raw datagrams at `muttd run --roles ingestor`
/// (embedded backend), counted by `mutt_ingest_snmp_notifications_total`. Run with
/// `cargo test -p muttd --release --test traps -- --ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_traps_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::muttd(dir.path());
    cmd.env("INGEST_API_KEY", "traps-test-key").env("MUTT_LOG__LEVEL", "warn");
    let (_child, (traps, http)) = spawn_ingestor_only(&mut cmd);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let total = 20_000u64;
    let start = Instant::now();
    for n in 0..total {
        sender.send_to(V2C_TRAP, traps).unwrap();
        // Paced in bursts so the socket buffer, not the listener, is not what is measured.
        if n % 200 == 199 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let sent_in = start.elapsed();
    let queued = |m: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(r#"mutt_ingest_snmp_notifications_total{listener="snmp",kind="trap"}"#))
            .and_then(|l| l.split(' ').nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let (mut last, mut stable) = (0, Instant::now());
    while stable.elapsed() < Duration::from_secs(2) {
        let now = queued(&http_get(http, "/metrics"));
        if now != last {
            (last, stable) = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = stable.duration_since(start);
    eprintln!(
        "sent {total} traps in {sent_in:?}; queued {last} in {took:?}: {:.0} traps/s",
        last as f64 / took.as_secs_f64()
    );
    assert!(last > 0);
}

/// `muttd run --roles ingestor` (nothing drains the queue) with the dynamic
/// `max_ingest_queue_size` at 1, read live: once an event waits, `snmpinform -t 1 -r 0` times
/// out (not acknowledged, counted as dropped); after the limit is raised it is acknowledged.
#[test]
fn inform_unacknowledged_while_the_queue_refuses() {
    if !have_net_snmp("inform_unacknowledged_while_the_queue_refuses") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::muttd(dir.path());
    cmd.env("INGEST_API_KEY", "traps-test-key").env("MUTT_LOG__LEVEL", "warn");
    let (child, lines) = spawn_ingestor_only(&mut cmd);
    let run = Muttd { _child: child, traps: lines.0, http: Some(lines.1), dir: dir.path().to_owned() };
    let set = |v: &str| {
        let out = run.muttd(&["config", "set", "max_ingest_queue_size", v]);
        assert!(out.status.success(), "config set: {}", String::from_utf8_lossy(&out.stderr));
    };
    let inform = |n: u32| {
        let out =
            run.send("snmpinform", "127.0.0.1", &["-v", "2c", "-c", "public", "-t", "1", "-r", "0"], &["", CISCO_TRAP]);
        eprintln!("inform {n}: {}", if out.status.success() { "acknowledged" } else { "not acknowledged" });
        out.status.success()
    };
    set("1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while inform(n) {
        n += 1;
        assert!(Instant::now() < deadline, "informs still acknowledged with max_ingest_queue_size 1 and a full queue");
    }
    let metrics = http_get(lines.1, "/metrics");
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("mutt_ingest_dropped_total{") && l.contains("queue_full_unacknowledged"));
    assert!(dropped.is_some(), "the unacknowledged inform is counted: {metrics}");
    set("100000");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !inform(n) {
        n += 1;
        assert!(Instant::now() < deadline, "informs not acknowledged after the queue limit was raised");
    }
}

/// `cmd run --roles ingestor`: the trap listener's and the ingestor's addresses.
fn spawn_ingestor_only(cmd: &mut Command) -> (KillOnDrop, (SocketAddr, SocketAddr)) {
    use std::io::BufRead;
    cmd.args(["run", "--roles", "ingestor"]).stdout(std::process::Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("spawn muttd run"));
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let (mut traps, mut http) = (None, None);
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("muttd: ingestor SNMP traps (") {
            traps = rest.split_once(") on udp://").map(|(_, a)| a.trim().parse().expect("an address"));
        }
        if let Some((_, addr)) = common::listening(&line) {
            http = Some(addr);
        }
        if let (Some(t), Some(h)) = (traps, http) {
            return (child, (t, h));
        }
    }
    panic!("muttd run exited before printing its addresses");
}

/// A plain HTTP/1.0 GET on loopback; the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or(text)
}

#[test]
fn v3_auth_priv_traps_and_informs_of_a_configured_user() {
    if !have_net_snmp("v3_auth_priv_traps_and_informs_of_a_configured_user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[[ingestor.traps]]
address = "127.0.0.1"
port = 0
communities = ["public"]
users = [{ name = "mutt", auth_protocol = "SHA", auth_password_secret = "TRAP_AUTH", priv_protocol = "AES", priv_password_secret = "TRAP_PRIV" }]
"#;
    let run = Muttd::start(dir.path(), Some(config));
    let user = |auth: &str| -> Vec<String> {
        ["-v", "3", "-l", "authPriv", "-u", "mutt", "-a", "SHA", "-A", auth, "-x", "AES", "-X", PRIV_PASS]
            .map(String::from)
            .to_vec()
    };
    let good = user(AUTH_PASS);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    // A trap comes from the sender's engine (-e); an inform discovers the listener's.
    let trap = [&good[..], &["-e", "0x8000000001020304"]].concat();
    run.sent("snmptrap", "127.0.0.6", &trap, &["", CISCO_TRAP, SYS_NAME, "s", "v3-sw"]);
    let bad = user("wrong-auth-pass");
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    for from in ["127.0.0.17", "127.0.0.17", "127.0.0.19"] {
        run.sent("snmptrap", from, &[&bad[..], &["-e", "0x8000000001020305"]].concat(), &["", CISCO_TRAP]);
    }
    run.sent("snmpinform", "127.0.0.18", &[&good[..], &["-t", "2", "-r", "2"]].concat(), &["", CISCO_TRAP]);

    let event = expect_event(&run, "v3 authPriv trap", "127.0.0.6", "127.0.0.6", "v3", "trap");
    assert_eq!(varbind(&event, SYS_NAME).map(|b| &b["value"]), Some(&Value::from("v3-sw")), "{event}");
    expect_event(&run, "v3 authPriv inform", "127.0.0.18", "127.0.0.18", "v3", "inform");
    assert!(audited(&run.db(), "127.0.0.17").is_none(), "a v3 trap with a wrong password was accepted");
    run.wait_logged(&["failed USM checks", "127.0.0.19"]);
    assert_eq!(run.logged(&["failed USM checks", "127.0.0.17"]), 1, "once a minute per source: {}", run.log());
    assert_eq!(run.logged(&["failed USM checks", "127.0.0.19"]), 1, "each source");
    assert!(run.metric(r#"mutt_ingest_snmp_errors_total{listener="snmp",kind="auth"}"#) >= 3);
    let state = std::fs::read_to_string(dir.path().join("mutt-data/snmp-engine-snmp")).expect("engine state kept");
    assert!(state.split_whitespace().nth(1) == Some("1"), "first boot: {state}");
}

/// The value of the metric line starting with `prefix` (0 when absent).
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// BER: `tag`, definite length, `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A v2c notification (`pdu` 0xa7 trap, 0xa6 inform), community `public`, snmpTrapOID
/// CISCO_TRAP and sysName.0 = `name`.
fn v2c_notification(pdu: u8, request_id: u32, name: &str) -> Vec<u8> {
    let vb = |oid: &[u8], value: Vec<u8>| tlv(0x30, &[tlv(0x06, oid), value].concat());
    let varbinds = [
        vb(&[0x2b, 6, 1, 2, 1, 1, 3, 0], tlv(0x43, &[0])),
        vb(&[0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0], tlv(0x06, &[0x2b, 6, 1, 4, 1, 9, 9, 41, 2, 0, 1])),
        vb(&[0x2b, 6, 1, 2, 1, 1, 5, 0], tlv(0x04, name.as_bytes())),
    ]
    .concat();
    let body = [tlv(0x02, &request_id.to_be_bytes()), tlv(0x02, &[0]), tlv(0x02, &[0]), tlv(0x30, &varbinds)].concat();
    tlv(0x30, &[tlv(0x02, &[1]), tlv(0x04, b"public"), tlv(pdu, &body)].concat())
}

/// Sends a v2c inform once and waits up to `wait` for its Response (same request id).
fn inform_acknowledged(socket: &std::net::UdpSocket, to: SocketAddr, request_id: u32, name: &str) -> bool {
    socket.send_to(&v2c_notification(0xa6, request_id, name), to).unwrap();
    let wanted = tlv(0x02, &request_id.to_be_bytes());
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 2048];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        let Ok(n) = socket.recv(&mut buf) else { return false };
        let reply = &buf[..n];
        if reply.contains(&0xa2) && reply.windows(wanted.len()).any(|w| w == wanted) {
            return true;
        }
    }
    false
}

/// How many events are audited, and one of them (for failure messages).
fn audit_sample(db: &Path) -> String {
    let Ok(c) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else { return "no database".into() };
    c.query_row("SELECT count(*), max(raw_message) FROM event_audit_log", [], |r| {
        Ok(format!("{} audited, e.g. {:?}", r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })
    .unwrap_or_else(|e| e.to_string())
}

/// Whether an audited event carries sysName.0 = `name`.
fn audited_name(db: &Path, name: &str) -> bool {
    let Ok(c) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else { return false };
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row(
        "SELECT count(*) FROM event_audit_log WHERE raw_message LIKE ?1",
        [format!("%\"value\":\"{name}\"%")],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

/// Informs while the dynamic `max_ingest_queue_size` flips between 1 (refuse: nothing drains
/// the queue of `muttd run --roles ingestor`) and plenty: an inform is acknowledged only once
/// its event is queued, so every acknowledged one is audited once the alerter runs (none
/// acknowledged and then dropped), and some are refused unacknowledged.
#[test]
fn every_acknowledged_inform_is_queued_while_the_queue_toggles() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::muttd(dir.path());
    cmd.env("INGEST_API_KEY", "traps-test-key").env("MUTT_LOG__LEVEL", "error");
    let (mut ingestor, (traps, http)) = spawn_ingestor_only(&mut cmd);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toggler = {
        let (stop, dir) = (stop.clone(), dir.path().to_owned());
        std::thread::spawn(move || {
            let set = |v: &str| common::muttd(&dir).args(["config", "set", "max_ingest_queue_size", v]).output();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for v in ["1", "100000"] {
                    let _ = set(v);
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        })
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let mut acked = Vec::new();
    let mut n = 0u32;
    while n < 300 && (started.elapsed() < Duration::from_secs(15) || acked.is_empty() || acked.len() == n as usize) {
        if inform_acknowledged(&socket, traps, 0x7000_0000 + n, &format!("inform-{n}")) {
            acked.push(n);
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    toggler.join().unwrap();
    eprintln!("{n} informs sent, {} acknowledged", acked.len());
    assert!(!acked.is_empty() && acked.len() < n as usize, "{} of {n} acknowledged", acked.len());
    let text = http_get(http, "/metrics");
    let unacknowledged = r#"mutt_ingest_dropped_total{listener="snmp",reason="queue_full_unacknowledged"}"#;
    assert!(metric(&text, unacknowledged) > 0, "refused informs are counted: {text}");
    let queued = metric(&text, r#"mutt_ingest_snmp_notifications_total{listener="snmp",kind="inform"}"#);
    // At least: a Response later than the sender waits for is counted unacknowledged here.
    assert!(queued >= acked.len() as u64, "{queued} informs queued, {} acknowledged", acked.len());
    ingestor.terminate(Duration::from_secs(20)).expect("the ingestor stops");

    // The whole pipeline on the same data: every acknowledged inform reaches the audit trail
    // (the rules first: an event no rule matches is counted, not audited).
    let rules = common::muttd(dir.path()).args(["rules", "import", &format!("{REPO}/examples/rules.yaml")]).output();
    assert!(rules.is_ok_and(|o| o.status.success()), "rules import");
    let run = Muttd::launch(dir.path(), None);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in &acked {
        while !audited_name(&run.db(), &format!("inform-{i}")) {
            assert!(
                Instant::now() < deadline,
                "inform {i} was acknowledged but never audited: {}",
                audit_sample(&run.db())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Traps arriving together are queued as one submission (one queue push), not one each;
/// the listener's bytes are counted.
#[test]
fn traps_are_queued_in_bursts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::muttd(dir.path());
    cmd.env("INGEST_API_KEY", "traps-test-key").env("MUTT_LOG__LEVEL", "warn");
    let (_child, (traps, http)) = spawn_ingestor_only(&mut cmd);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let total = 500u64;
    // Bursts of 100 (well within the socket buffer), a pause between.
    for n in 0..total {
        sender.send_to(&v2c_notification(0xa7, n as u32, &format!("burst-{n}")), traps).unwrap();
        if n % 100 == 99 {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let queued = r#"mutt_ingest_snmp_notifications_total{listener="snmp",kind="trap"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&http_get(http, "/metrics"), queued) < total {
        assert!(Instant::now() < deadline, "traps not all queued: {}", http_get(http, "/metrics"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = http_get(http, "/metrics");
    let pushes = metric(&text, r#"mutt_ingest_requests_total{status="success",reason=""}"#);
    eprintln!("{total} traps queued in {pushes} pushes");
    assert!(pushes <= total / 5, "{total} traps in {pushes} pushes");
    // The variable bindings after sysUpTime.0 and snmpTrapOID.0: sysName.0, 12 bytes + the name.
    assert!(metric(&text, r#"mutt_ingest_snmp_bytes_total{listener="snmp"}"#) >= total * 20, "{text}");
}

/// SNMPv3 across a restart: the engine's boots counter is kept in the data directory and
/// grows, agents keep working with the same user, and a message from the previous boot
/// (replayed, outside the time window) is refused and counted.
#[test]
fn v3_engine_boots_survive_a_restart_and_a_stale_message_is_refused() {
    if !have_net_snmp("v3_engine_boots_survive_a_restart_and_a_stale_message_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[[ingestor.traps]]
address = "127.0.0.1"
port = 0
users = [{ name = "mutt", auth_protocol = "SHA", auth_password_secret = "TRAP_AUTH", priv_protocol = "AES", priv_password_secret = "TRAP_PRIV" }]
"#;
    let v3 = ["-v", "3", "-l", "authPriv", "-u", "mutt", "-a", "SHA", "-A", AUTH_PASS, "-x", "AES", "-X", PRIV_PASS];
    let inform = |run: &Muttd, from: &str, extra: &[&str]| {
        run.send("snmpinform", from, &[&v3[..], &["-t", "2", "-r", "1"], extra].concat(), &["", CISCO_TRAP])
    };
    let state_file = dir.path().join("mutt-data/snmp-engine-snmp");
    let mut run = Muttd::start(dir.path(), Some(config));
    assert!(inform(&run, "127.0.0.21", &[]).status.success(), "first boot: the inform is acknowledged");
    expect_event(&run, "v3 inform, first boot", "127.0.0.21", "127.0.0.21", "v3", "inform");
    let first = std::fs::read_to_string(&state_file).expect("engine state kept");
    let engine_id = first.split_whitespace().next().unwrap().to_owned();
    assert_eq!(first.split_whitespace().nth(1), Some("1"), "{first}");
    run._child.terminate(Duration::from_secs(20)).expect("muttd stops");

    let run = Muttd::launch(dir.path(), Some(config));
    let second = std::fs::read_to_string(&state_file).unwrap();
    assert_eq!(second.split_whitespace().collect::<Vec<_>>(), [engine_id.as_str(), "2"], "same engine, boots + 1");
    // A message made for the previous boot: outside the time window.
    let stale = inform(&run, "127.0.0.22", &["-e", &format!("0x{engine_id}"), "-Z", "1,10"]);
    eprintln!("stale inform: {}", String::from_utf8_lossy(&stale.stderr));
    let counted = r#"mutt_ingest_snmp_errors_total{listener="snmp",kind="time_window"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.metric(counted) == 0 {
        assert!(Instant::now() < deadline, "the stale message is not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The agent (a fresh discovery) keeps working after the restart.
    assert!(inform(&run, "127.0.0.23", &[]).status.success(), "after the restart: acknowledged");
    expect_event(&run, "v3 inform after the restart", "127.0.0.23", "127.0.0.23", "v3", "inform");
}

/// A listener's `max_messages_per_second`: traps over it are dropped and counted
/// (`reason="rate_limit"`), an inform over it goes unanswered.
#[test]
fn traps_over_max_messages_per_second_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[[ingestor.traps]]
address = "127.0.0.1"
port = 0
communities = ["public"]
max_messages_per_second = 10
"#;
    let run = Muttd::launch(dir.path(), Some(config));
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..100u32 {
        sender.send_to(&v2c_notification(0xa7, n, &format!("rate-{n}")), run.traps).unwrap();
    }
    let queued = r#"mutt_ingest_snmp_notifications_total{listener="snmp",kind="trap"}"#;
    let dropped = r#"mutt_ingest_dropped_total{listener="snmp",reason="rate_limit"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.metric(queued) + run.metric(dropped) < 100 {
        assert!(Instant::now() < deadline, "{}", http_get(run.http.unwrap(), "/metrics"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let q = run.metric(queued);
    assert!((10..=20).contains(&q), "a second's budget (10) and what refilled meanwhile: {q}");
    // The budget is spent: an inform now goes unanswered.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..20 {
        socket.send_to(&v2c_notification(0xa7, 1000 + n, "spend"), run.traps).unwrap();
    }
    assert!(!inform_acknowledged(&socket, run.traps, 4242, "over-the-rate"), "an inform over the rate is answered");
    assert!(run.metric(r#"mutt_ingest_dropped_total{listener="snmp",reason="rate_limit_unacknowledged"}"#) >= 1);
}
