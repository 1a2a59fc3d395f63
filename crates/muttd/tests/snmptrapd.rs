//! The shipped snmptrapd recipe (`deploy/snmptrapd`) with Debian's net-snmp packages: a private
//! `snmptrapd` on a loopback port runs the repository's `mutt-trap-handler` against `muttd run`;
//! `snmptrap` sends SNMPv1, v2c and v3 authPriv traps, and each arrives with its numeric
//! `trap_oid`, the device as hostname, and the example OID rule's alert. Without the
//! `snmptrapd` or `snmptrap` binaries (Debian packages `snmptrapd`, `snmp`; `scripts/test.sh`
//! installs them) the tests say so and do nothing.

mod common;

use common::KillOnDrop;
use mutt_sqlite::rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const KEY: &str = "snmptrapd-test-ingest-key";
/// The example rule (`examples/rules.yaml`) the Cisco syslog trap must raise its alert through.
const CISCO_PREFIX: &str = ".1.3.6.1.4.1.9.9.41.2";
const CISCO_TRAP: &str = ".1.3.6.1.4.1.9.9.41.2.0.1";
const LINK_DOWN: &str = ".1.3.6.1.6.3.1.1.5.3";

fn handler() -> String {
    format!("{REPO}/deploy/snmptrapd/mutt-trap-handler")
}

/// A program on PATH or in the sbin directories (snmptrapd lives in /usr/sbin).
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// snmptrapd and snmptrap, or `None` after saying why the test does nothing.
fn net_snmp(test: &str) -> Option<(PathBuf, PathBuf)> {
    match (find("snmptrapd"), find("snmptrap")) {
        (Some(d), Some(t)) => {
            assert!(find("python3").is_some(), "python3 is needed by deploy/snmptrapd/mutt-trap-handler");
            Some((d, t))
        }
        _ => {
            mutt_testkit::skip_or_fail(
                test,
                "snmptrapd/snmptrap not installed (apt-get install snmptrapd snmp; scripts/test.sh does)",
            );
            None
        }
    }
}

/// A running `muttd run` on the embedded backend in `dir`; killed when dropped.
struct Muttd {
    _child: KillOnDrop,
    ingest_url: String,
}

fn muttd(dir: &Path) -> Command {
    let mut cmd = common::muttd(dir);
    cmd.env("INGEST_API_KEY", KEY).env("MUTT_LOG__LEVEL", "warn");
    cmd
}

impl Muttd {
    fn start(dir: &Path) -> Self {
        let (child, stdout) = common::spawn_run(&mut muttd(dir));
        Self { _child: child, ingest_url: stdout.ingest_url() }
    }

    fn import(&self, dir: &Path, rules: &Path) -> String {
        let out = muttd(dir).args(["rules", "import"]).arg(rules).output().expect("run muttd rules import");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "muttd rules import {}: {text}", rules.display());
        text
    }
}

/// A private snmptrapd on a loopback UDP port, everything it writes in `dir`; killed when dropped.
struct Trapd {
    child: KillOnDrop,
    port: u16,
    log: PathBuf,
}

/// The environment of net-snmp's programs: no user or system configuration or state.
fn net_snmp_env(cmd: &mut Command, dir: &Path) {
    let persist = dir.join("persist");
    std::fs::create_dir_all(&persist).unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("SNMPCONFPATH", dir)
        .env("SNMP_PERSISTENT_DIR", &persist)
        // Debian's snmp.conf (`mibs :`): no MIBs, so names print as `iso.3.6.1…`.
        .env("MIBS", "");
}

impl Trapd {
    fn start(binary: &Path, dir: &Path, config: &str, ingest_url: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("snmptrapd.conf");
        std::fs::write(&conf, config).unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join("snmptrapd.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary);
        net_snmp_env(&mut cmd, dir);
        let child = cmd
            .env("MUTT_URL", ingest_url)
            .env("MUTT_API_KEY", KEY)
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("snmptrapd.pid"))
            .arg(format!("udp:127.0.0.1:{port}"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn snmptrapd");
        let mut trapd = Self { child: KillOnDrop(child), port, log };
        // It prints its version once it listens.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !trapd.log_text().contains("NET-SNMP version") {
            if let Ok(Some(status)) = trapd.child.try_wait() {
                panic!("snmptrapd exited ({status}): {}", trapd.log_text());
            }
            assert!(Instant::now() < deadline, "snmptrapd does not start: {}", trapd.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        trapd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `snmptrap <options> --clientaddr=<from> <this daemon> <pdu>`; `from` is a loopback
    /// address, the UDP source the daemon sees.
    fn send(&self, snmptrap: &Path, from: &str, options: &[&str], pdu: &[&str]) {
        let dir = self.log.parent().expect("the log is in the daemon's directory");
        let mut cmd = Command::new(snmptrap);
        net_snmp_env(&mut cmd, dir);
        let out = cmd
            .args(options)
            .arg(format!("--clientaddr={from}"))
            .arg(format!("127.0.0.1:{}", self.port))
            .args(pdu)
            .output()
            .expect("run snmptrap");
        assert!(out.status.success(), "snmptrap {options:?} {pdu:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The shipped configuration with its documented SNMPv3 lines enabled and the traphandle
/// pointing at the repository's handler; and the v3 user as the `createUser` line gives it.
fn test_config() -> (String, V3User) {
    let shipped = std::fs::read_to_string(format!("{REPO}/deploy/snmptrapd/snmptrapd.conf")).unwrap();
    assert!(shipped.lines().any(|l| l.trim() == "outputOption n"), "the shipped config asks for numeric OIDs");
    let mut user = None;
    let mut handle = false;
    let lines: Vec<String> = shipped
        .lines()
        .map(|line| {
            if let Some(enabled) = line.strip_prefix('#').filter(|l| l.starts_with("createUser ")) {
                user = Some(V3User::from_create_user(enabled));
                enabled.to_owned()
            } else if let Some(enabled) = line.strip_prefix('#').filter(|l| l.starts_with("authUser ")) {
                enabled.to_owned()
            } else if line.starts_with("traphandle default ") {
                handle = true;
                format!("traphandle default {}", handler())
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(handle, "the shipped config has `traphandle default …`");
    let config = lines.join("\n") + "\n";
    assert!(config.lines().any(|l| l.starts_with("authUser ")), "the shipped config documents `#authUser …`");
    (config, user.expect("the shipped config documents `#createUser …`"))
}

struct V3User {
    engine: String,
    name: String,
    auth: (String, String),
    privacy: (String, String),
}

impl V3User {
    /// `createUser -e ENGINE NAME SHA "authpass" AES "privpass"`.
    fn from_create_user(line: &str) -> Self {
        let t: Vec<String> = line.split_whitespace().map(|w| w.trim_matches('"').to_owned()).collect();
        assert!(t.len() == 8 && t[1] == "-e", "createUser line not as expected: {line}");
        Self {
            engine: t[2].clone(),
            name: t[3].clone(),
            auth: (t[4].clone(), t[5].clone()),
            privacy: (t[6].clone(), t[7].clone()),
        }
    }

    /// snmptrap's options for this user at `level` (authPriv or authNoPriv).
    fn options(&self, level: &str) -> Vec<String> {
        let mut o: Vec<String> = ["-v", "3", "-l", level, "-u", &self.name, "-a", &self.auth.0, "-A", &self.auth.1]
            .map(String::from)
            .to_vec();
        if level == "authPriv" {
            o.extend(["-x", &self.privacy.0, "-X", &self.privacy.1].map(String::from));
        }
        o.extend(["-e".to_owned(), self.engine.clone()]);
        o
    }
}

/// The audit row of the event from `host`: (rule id, handling decision, the event).
fn audited(db: &Path, host: &str) -> Option<(i64, String, Value)> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let row = c.query_row(
        "SELECT matched_rule_id, handling_decision, raw_message FROM event_audit_log WHERE hostname = ?1",
        [host],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)),
    );
    let (rule, handling, raw) = row.ok()?;
    Some((rule, handling, serde_json::from_str(&raw.unwrap_or_default()).unwrap_or(Value::Null)))
}

fn rule_id(db: &Path, trap_oid: &str) -> i64 {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row("SELECT id FROM alert_rules WHERE trap_oid = ?1", [trap_oid], |r| r.get(0)).unwrap()
}

/// One trap to expect: from the device `host`, with `trap_oid`, handled by the rule on `rule_oid`.
struct Expect {
    what: &'static str,
    host: &'static str,
    trap_oid: &'static str,
    rule_oid: &'static str,
    team: &'static str,
}

/// Waits until every expected trap is audited, then checks each audit row and alert line.
fn check(dir: &Path, expected: &[Expect], trapd_logs: &dyn Fn() -> String) {
    let db = dir.join("mutt-data/mutt.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(missing) = expected.iter().find(|e| audited(&db, e.host).is_none()) {
        assert!(
            Instant::now() < deadline,
            "{} (hostname {}) never audited; snmptrapd said:\n{}",
            missing.what,
            missing.host,
            trapd_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for e in expected {
        let (rule, handling, event) = audited(&db, e.host).unwrap();
        assert_eq!(event["trap_oid"], e.trap_oid, "{}: numeric trap_oid with a leading dot: {event}", e.what);
        assert_eq!(event["hostname"], e.host, "{}: the device is the hostname: {event}", e.what);
        assert_eq!(rule, rule_id(&db, e.rule_oid), "{}: handled by the {} rule: {event}", e.what, e.rule_oid);
        assert_eq!(handling, "Page_and_ticket", "{}: {event}", e.what);
        let message = event["message"].as_str().unwrap_or_default();
        let lead = format!("{} {}", e.host, e.trap_oid);
        assert!(message == lead || message.starts_with(&format!("{lead} ")), "{}: message {message:?}", e.what);
        assert!(!event.to_string().contains("public"), "{}: the community is never posted: {event}", e.what);
    }
    // The forwarder writes the alerts asynchronously.
    let alerts_file = dir.join("mutt-data/alerts.jsonl");
    let deadline = Instant::now() + Duration::from_secs(15);
    for e in expected {
        loop {
            let alerts = std::fs::read_to_string(&alerts_file).unwrap_or_default();
            if alerts.lines().any(|l| l.contains(&format!("\"{}\"", e.host)) && l.contains(e.team)) {
                break;
            }
            assert!(Instant::now() < deadline, "{}: no alert for {} in {alerts}", e.what, e.host);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn shipped_recipe_delivers_v1_v2c_and_v3_traps_to_muttd_run() {
    let Some((snmptrapd, snmptrap)) = net_snmp("shipped_recipe_delivers_v1_v2c_and_v3_traps_to_muttd_run") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Muttd::start(dir.path());
    let imported = run.import(dir.path(), &Path::new(REPO).join("examples/rules.yaml"));
    assert!(imported.contains("5 created"), "{imported}");
    // A rule for the generic v1 trap (linkDown) too.
    let link_down = dir.path().join("link-down.yaml");
    std::fs::write(
        &link_down,
        format!(
            "rules:\n  - trap_oid: {LINK_DOWN}\n    match_type: oid_prefix\n    priority: 16\n    \
             prod_handling: Page_and_ticket\n    dev_handling: Ignore\n    team_assignment: LinkTeam\n"
        ),
    )
    .unwrap();
    run.import(dir.path(), &link_down);

    let (config, user) = test_config();
    let trapd = Trapd::start(&snmptrapd, &dir.path().join("trapd"), &config, &run.ingest_url);
    let v2c = ["-v", "2c", "-c", "public"];
    let v1 = ["-v", "1", "-c", "public"];
    trapd.send(&snmptrap, "127.0.0.5", &v2c, &["", CISCO_TRAP, ".1.3.6.1.2.1.1.5.0", "s", "core-sw \"1\""]);
    // A proxy (snmptrapd's addForwarderInfo, or a device's own) names the device.
    trapd.send(&snmptrap, "127.0.0.9", &v2c, &["", CISCO_TRAP, ".1.3.6.1.6.3.18.1.3.0", "a", "192.0.2.33"]);
    // v1: enterprise-specific trap 1 of the Cisco enterprise, from agent-addr 127.0.0.7.
    let ifindex = [".1.3.6.1.2.1.2.2.1.1.2", "i", "2"];
    trapd.send(&snmptrap, "127.0.0.8", &v1, &[&[CISCO_PREFIX, "127.0.0.7", "6", "1", ""], &ifindex[..]].concat());
    // v1: generic linkDown (2); an agent-addr of 0.0.0.0 leaves the UDP source as the device.
    trapd.send(
        &snmptrap,
        "127.0.0.8",
        &v1,
        &[&[".1.3.6.1.4.1.8072.3.2.10", "127.0.0.10", "2", "0", ""], &ifindex[..]].concat(),
    );
    trapd.send(&snmptrap, "127.0.0.13", &v1, &[&[CISCO_PREFIX, "0.0.0.0", "6", "1", ""], &ifindex[..]].concat());
    // v3: authNoPriv is refused by `authUser … priv`; authPriv arrives.
    let no_priv = user.options("authNoPriv");
    let no_priv: Vec<&str> = no_priv.iter().map(String::as_str).collect();
    trapd.send(&snmptrap, "127.0.0.11", &no_priv, &["", CISCO_TRAP]);
    let auth_priv = user.options("authPriv");
    let auth_priv: Vec<&str> = auth_priv.iter().map(String::as_str).collect();
    trapd.send(&snmptrap, "127.0.0.6", &auth_priv, &["", CISCO_TRAP, ".1.3.6.1.2.1.1.5.0", "s", "v3-sw"]);

    let cisco = |what, host| Expect { what, host, trap_oid: CISCO_TRAP, rule_oid: CISCO_PREFIX, team: "NetOps" };
    let expected = [
        cisco("v2c trap", "127.0.0.5"),
        cisco("v2c trap through a proxy", "192.0.2.33"),
        cisco("v1 enterprise-specific trap", "127.0.0.7"),
        Expect { what: "v1 linkDown", host: "127.0.0.10", trap_oid: LINK_DOWN, rule_oid: LINK_DOWN, team: "LinkTeam" },
        cisco("v1 trap with agent-addr 0.0.0.0", "127.0.0.13"),
        cisco("v3 authPriv trap", "127.0.0.6"),
    ];
    check(dir.path(), &expected, &|| trapd.log_text());

    let db = dir.path().join("mutt-data/mutt.db");
    let (_, _, v2c_event) = audited(&db, "127.0.0.5").unwrap();
    assert_eq!(v2c_event["source_ip"], "127.0.0.5", "{v2c_event}");
    let name = v2c_event["varbinds"].as_array().and_then(|v| v.iter().find(|b| b["oid"] == ".1.3.6.1.2.1.1.5.0"));
    assert_eq!(
        name.map(|b| &b["value"]),
        Some(&Value::from("core-sw \"1\"")),
        "the value apart from the OID: {v2c_event}"
    );
    let (_, _, proxied) = audited(&db, "192.0.2.33").unwrap();
    assert_eq!(proxied["source_ip"], "127.0.0.9", "the proxy stays visible: {proxied}");
    let (_, _, v1_event) = audited(&db, "127.0.0.7").unwrap();
    assert!(
        v1_event["message"].as_str().unwrap_or_default().contains(&format!(".1.3.6.1.6.3.1.1.4.3.0={CISCO_PREFIX}")),
        "snmpTrapEnterprise.0 in the message: {v1_event}"
    );
    // Sent before the authPriv trap, which is audited: it would be by now.
    assert!(audited(&db, "127.0.0.11").is_none(), "an authNoPriv trap passed `authUser … priv`");
}

/// A site that keeps its own snmptrapd.conf and only adds the traphandle line: snmptrapd prints
/// Debian's default `iso.3.6.1…` names, and the handler still posts numeric OIDs.
#[test]
fn handler_posts_numeric_oids_from_debians_default_output() {
    let Some((snmptrapd, snmptrap)) = net_snmp("handler_posts_numeric_oids_from_debians_default_output") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Muttd::start(dir.path());
    run.import(dir.path(), &Path::new(REPO).join("examples/rules.yaml"));
    let config = format!("authCommunity log,execute,net public\ntraphandle default {}\n", handler());
    let trapd = Trapd::start(&snmptrapd, &dir.path().join("trapd"), &config, &run.ingest_url);
    trapd.send(&snmptrap, "127.0.0.12", &["-v", "2c", "-c", "public"], &["", CISCO_TRAP]);
    trapd.send(&snmptrap, "127.0.0.8", &["-v", "1", "-c", "public"], &[CISCO_PREFIX, "127.0.0.14", "6", "1", ""]);
    let expected = [
        Expect { what: "v2c trap", host: "127.0.0.12", trap_oid: CISCO_TRAP, rule_oid: CISCO_PREFIX, team: "NetOps" },
        Expect { what: "v1 trap", host: "127.0.0.14", trap_oid: CISCO_TRAP, rule_oid: CISCO_PREFIX, team: "NetOps" },
    ];
    check(dir.path(), &expected, &|| trapd.log_text());
    assert!(trapd.log_text().contains("iso.3.6.1.6.3.1.1.4.1.0"), "snmptrapd printed names: {}", trapd.log_text());
}

/// `mutt-trap-handler --dry-run` on what snmptrapd prints with MIBs loaded and quick print off
/// (names, `TYPE: value`, values over several lines).
#[test]
fn handler_reads_mib_names_types_and_multi_line_values() {
    assert!(find("python3").is_some(), "python3 is needed by deploy/snmptrapd/mutt-trap-handler");
    let input = [
        "router9.example.net",
        "UDP/IPv6: [2001:db8::7]:40000->[::1]:162",
        "DISMAN-EVENT-MIB::sysUpTimeInstance = Timeticks: (123) 0:00:01.23",
        "SNMPv2-MIB::snmpTrapOID.0 = OID: IF-MIB::linkDown",
        "IF-MIB::ifIndex.2 = INTEGER: 2",
        "IF-MIB::ifOperStatus.2 = INTEGER: down(2)",
        "SNMPv2-MIB::sysName.0 = STRING: \"core \\\"1\\\"",
        "second line\"",
        "SNMPv2-MIB::sysContact.0 = Hex-STRING: 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 ",
        "11 12 ",
        "SNMP-COMMUNITY-MIB::snmpTrapCommunity.0 = STRING: \"secret-community\"",
        "SNMPv2-MIB::snmpTrapEnterprise.0 = OID: SNMPv2-SMI::enterprises.9.1.1",
    ]
    .join("\n");
    let mut child = Command::new(handler())
        .arg("--dry-run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mutt-trap-handler");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let event: Value = serde_json::from_slice(&out.stdout).expect("one JSON event");
    assert_eq!(event["hostname"], "2001:db8::7");
    assert_eq!(event["trap_oid"], LINK_DOWN);
    assert!(!event.to_string().contains("secret-community"), "the community is never posted: {event}");
    let binds = event["varbinds"].as_array().unwrap();
    let bind = |oid: &str| binds.iter().find(|b| b["oid"] == oid).unwrap_or_else(|| panic!("{oid} in {event}"));
    assert_eq!(bind(".1.3.6.1.2.1.2.2.1.8.2")["value"], "down(2)");
    assert_eq!(bind(".1.3.6.1.2.1.2.2.1.8.2")["type"], "INTEGER");
    assert_eq!(bind(".1.3.6.1.2.1.1.5.0")["value"], "core \"1\"\nsecond line");
    assert_eq!(bind(".1.3.6.1.2.1.1.4.0")["value"], "01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 11 12");
    assert_eq!(bind(".1.3.6.1.6.3.1.1.4.3.0")["value"], ".1.3.6.1.4.1.9.1.1");
    assert_eq!(
        event["message"],
        "2001:db8::7 .1.3.6.1.6.3.1.1.5.3 .1.3.6.1.2.1.2.2.1.1.2=2 .1.3.6.1.2.1.2.2.1.8.2=down(2) \
         .1.3.6.1.2.1.1.5.0=core \"1\" second line \
         .1.3.6.1.2.1.1.4.0=01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 11 12 \
         .1.3.6.1.6.3.1.1.4.3.0=.1.3.6.1.4.1.9.1.1"
    );
}
