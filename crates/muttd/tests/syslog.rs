//! The native syslog listeners of `muttd run` with real clients: util-linux `logger` over UDP
//! and TCP (RFC 3164 and 5424, newline and octet-counted framing), and a private `rsyslogd`
//! forwarding with `omfwd` over TCP (octet counting) and TLS (gtls, certificate checked against
//! a private CA made with `openssl`). Every event is audited with the syslog fields, and a rule
//! on `syslog_severity` matches only the events of that severity. Without `rsyslogd` or its
//! gtls driver (Debian packages `rsyslog`, `rsyslog-gnutls`; `scripts/test.sh` installs them)
//! the rsyslog part says so and is skipped.

mod common;

use common::KillOnDrop;
use mutt_sqlite::rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "syslog-test-ingest-key";
/// The team of the rule on `syslog_severity` 2 (crit), and of the catch-all rule after it
/// (only events that match a rule are audited).
const TEAM: &str = "SyslogCritTeam";
const OTHER: &str = "SyslogOtherTeam";

fn muttd(dir: &Path) -> Command {
    let mut cmd = common::muttd(dir);
    cmd.env("INGEST_API_KEY", KEY).env("MUTT_LOG__LEVEL", "warn");
    cmd
}

/// `muttd run` with `config`; the syslog addresses it prints, by protocol.
fn start(dir: &Path, config: Option<&Path>, protocols: usize) -> (KillOnDrop, HashMap<String, SocketAddr>) {
    let mut cmd = muttd(dir);
    if let Some(c) = config {
        cmd.env("MUTT_CONFIG", c);
    }
    let (child, stdout) = common::spawn_run(&mut cmd);
    let mut found = HashMap::new();
    stdout.read_until("the syslog listeners", |line| {
        if let Some(rest) = line.strip_prefix("muttd: ingestor syslog (")
            && let Some((proto, url)) = rest.split_once(") on ")
            && let Some((_, addr)) = url.split_once("://")
        {
            found.insert(proto.to_owned(), addr.parse().expect("an address"));
        }
        found.len() == protocols
    });
    (child, found)
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn import_rules(dir: &Path) {
    let rules = dir.join("syslog-rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "rules:\n  - match_string: SYSLOGTEST\n    match_type: contains\n    syslog_severity: 2\n    priority: 1\n    \
             prod_handling: Page_and_ticket\n    dev_handling: Ignore\n    team_assignment: {TEAM}\n  \
             - match_string: SYSLOGTEST\n    match_type: contains\n    priority: 50\n    \
             prod_handling: Ticket_only\n    dev_handling: Ignore\n    team_assignment: {OTHER}\n"
        ),
    )
    .unwrap();
    run_ok(muttd(dir).args(["rules", "import"]).arg(&rules));
}

fn logger(addr: SocketAddr, args: &[&str], message: &str) {
    run_ok(
        Command::new("logger")
            .args(["-n", &addr.ip().to_string(), "-P", &addr.port().to_string()])
            .args(args)
            .arg(message),
    );
}

/// The audited event whose message contains `marker`, and its rule's team (None: no rule).
fn audited(db: &Path, marker: &str) -> Option<(Value, Option<String>)> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    let row = c.query_row(
        "SELECT a.raw_message, r.team_assignment FROM event_audit_log a \
         LEFT JOIN alert_rules r ON r.id = a.matched_rule_id WHERE a.raw_message LIKE ?1",
        [format!("%{marker}%")],
        |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<String>>(1)?)),
    );
    let (raw, team) = row.ok()?;
    Some((serde_json::from_str(&raw.unwrap_or_default()).ok()?, team))
}

/// Waits for the event with `marker` and checks its syslog fields; returns it.
fn expect(dir: &Path, marker: &str, severity: u8, crit_rule: bool, logs: &dyn Fn() -> String) -> Value {
    let db = dir.join("mutt-data/mutt.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (event, team) = loop {
        if let Some(found) = audited(&db, marker) {
            break found;
        }
        assert!(Instant::now() < deadline, "{marker} never audited; {}", logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(event["source"], "syslog", "{marker}: {event}");
    assert_eq!(event["syslog_severity"], severity, "{marker}: {event}");
    assert_eq!(event["source_ip"], "127.0.0.1", "{marker}: {event}");
    assert_eq!(event["hostname_source"], "message", "{marker}: {event}");
    assert!(event["hostname"].as_str().is_some_and(|h| !h.is_empty()), "{marker}: {event}");
    assert!(event["message"].as_str().is_some_and(|m| m.ends_with(marker)), "{marker}: {event}");
    assert!(event["_event_id"].is_string() && event["structured_data"].is_object(), "{marker}: {event}");
    let want = if crit_rule { TEAM } else { OTHER };
    assert_eq!(team.as_deref(), Some(want), "{marker}: the severity-2 rule matches only crit: {event}");
    event
}

#[test]
fn logger_over_udp_and_tcp_reaches_muttd_run_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (_run, addrs) = start(dir.path(), None, 2);
    import_rules(dir.path());
    let (udp, tcp) = (addrs["udp"], addrs["tcp"]);
    logger(udp, &["-d", "--rfc3164", "-p", "local4.crit", "-t", "bsd"], "SYSLOGTEST udp-3164");
    logger(udp, &["-d", "--rfc5424", "-p", "local4.err", "-t", "ietf", "--msgid", "M1"], "SYSLOGTEST udp-5424");
    logger(tcp, &["-T", "--rfc3164", "-p", "user.warning"], "SYSLOGTEST tcp-3164");
    logger(tcp, &["-T", "--rfc5424", "--octet-count", "-p", "user.crit"], "SYSLOGTEST tcp-5424-counted");
    let none = || String::new();
    let e = expect(dir.path(), "udp-3164", 2, true, &none);
    assert_eq!((e["facility"].as_str(), e["app_name"].as_str()), (Some("local4"), Some("bsd")), "{e}");
    let e = expect(dir.path(), "udp-5424", 3, false, &none);
    assert_eq!((e["msg_id"].as_str(), e["syslog_severity_name"].as_str()), (Some("M1"), Some("err")), "{e}");
    expect(dir.path(), "tcp-3164", 4, false, &none);
    expect(dir.path(), "tcp-5424-counted", 2, true, &none);
}

/// A program on PATH or in the sbin directories.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(["/usr/sbin", "/sbin"]).map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

fn gtls_driver() -> bool {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| d.path().join("rsyslog/lmnsd_gtls.so").is_file())
}

/// A private CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let openssl = |args: &[&str]| run_ok(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mutt test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

/// A private rsyslogd: UDP inputs on `inputs` forward to `tcp` (plain, octet-counted,
/// traditional format) and `tls` (gtls, RFC 5424 format). Killed when dropped.
struct Rsyslogd {
    _child: KillOnDrop,
    log: PathBuf,
}

impl Rsyslogd {
    fn start(binary: &Path, dir: &Path, ca: &Path, inputs: (u16, u16), tcp: SocketAddr, tls: SocketAddr) -> Self {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" defaultNetstreamDriverCAFile="{ca}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{p1}" ruleset="totcp")
input(type="imudp" address="127.0.0.1" port="{p2}" ruleset="totls")
ruleset(name="totcp") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" TCP_Framing="octet-counted")
}}
ruleset(name="totls") {{
  action(type="omfwd" target="127.0.0.1" port="{tls}" protocol="tcp" TCP_Framing="octet-counted"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid"
         template="RSYSLOG_SyslogProtocol23Format")
}}
"#,
                work = work.display(),
                ca = ca.display(),
                p1 = inputs.0,
                p2 = inputs.1,
                tcp = tcp.port(),
                tls = tls.port(),
            ),
        )
        .unwrap();
        let log = dir.join("rsyslogd.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .env_clear()
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn rsyslogd");
        let me = Self { _child: KillOnDrop(child), log };
        // Ready once its UDP inputs are bound.
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::UdpSocket::bind(("127.0.0.1", inputs.1)).is_ok() {
            assert!(Instant::now() < deadline, "rsyslogd does not start: {}", me.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn rsyslogd_forwards_over_tcp_and_tls_to_muttd_run() {
    let test = "rsyslogd_forwards_over_tcp_and_tls_to_muttd_run";
    let Some(rsyslogd) = find("rsyslogd").filter(|_| gtls_driver()) else {
        mutt_testkit::skip_or_fail(
            test,
            "rsyslogd or its gtls driver not installed (apt-get install rsyslog rsyslog-gnutls; scripts/test.sh does)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let config = dir.path().join("mutt.toml");
    std::fs::write(
        &config,
        format!(
            "[ingestor]\nsyslog = [{{ address = \"127.0.0.1\", port = 0, protocol = \"tcp\" }},\n  \
             {{ address = \"127.0.0.1\", port = 0, protocol = \"tls\", tls_cert_file = \"{}\", tls_key_file = \"{}\" }}]\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let (_run, addrs) = start(dir.path(), Some(&config), 2);
    assert!(!addrs.contains_key("udp"), "configured listeners replace muttd run's default ones");
    import_rules(dir.path());
    let inputs = (free_udp_port(), free_udp_port());
    let rsyslog = Rsyslogd::start(&rsyslogd, dir.path(), &ca, inputs, addrs["tcp"], addrs["tls"]);
    let via = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    logger(via(inputs.0), &["-d", "--rfc3164", "-p", "daemon.crit", "-t", "fwdtcp"], "SYSLOGTEST omfwd-tcp");
    logger(via(inputs.1), &["-d", "--rfc5424", "-p", "daemon.notice", "-t", "fwdtls"], "SYSLOGTEST omfwd-tls");
    let logs = || rsyslog.logs();
    let e = expect(dir.path(), "omfwd-tcp", 2, true, &logs);
    assert_eq!(e["app_name"], "fwdtcp", "{e}");
    let e = expect(dir.path(), "omfwd-tls", 5, false, &logs);
    assert_eq!(e["app_name"], "fwdtls", "{e}");
}

/// `deploy/rsyslog/60-mutt-omfwd.conf` passes `rsyslogd -N1` (its CA path pointed at a file
/// of the test's own).
#[test]
fn the_shipped_omfwd_example_is_valid_rsyslog_config() {
    let Some(rsyslogd) = find("rsyslogd").filter(|_| gtls_driver()) else {
        mutt_testkit::skip_or_fail(
            "the_shipped_omfwd_example_is_valid_rsyslog_config",
            "rsyslogd or its gtls driver not installed",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/rsyslog/60-mutt-omfwd.conf"))
            .unwrap();
    assert!(shipped.contains("TCP_Framing=\"octet-counted\""), "the example uses octet counting");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "").unwrap();
    let conf = dir.path().join("check.conf");
    let text = format!("global(workDirectory=\"{}\")\n", dir.path().display())
        + &shipped.replace("/etc/ssl/certs/mutt-ca.pem", &ca.display().to_string());
    std::fs::write(&conf, text).unwrap();
    run_ok(Command::new(rsyslogd).env_clear().arg("-N1").arg("-f").arg(&conf));
}
