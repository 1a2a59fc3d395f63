//! The container image (`Dockerfile`), `deploy/compose.yaml` and `deploy/k8s/` checked against
//! muttd itself, since no container runtime runs here.
//!
//! Statically: every container port, probe and health check is a port where the role it runs
//! serves that path (ports from `muttd::config`), every variable is one muttd reads (the
//! original's names from `legacy_variable_names`, the secrets from `SECRET_NAMES`, `MUTT_*`
//! names accepted by `config::load`), every command is one `muttd` parses, and the resulting
//! configuration is a production one (Redis and PostgreSQL, every listener on the container's
//! address, the secrets each role needs).
//!
//! Live: each Job and Deployment, and each compose service, runs as `muttd` with its own
//! arguments and environment, the connections pointed at the test Redis and PostgreSQL and the
//! ports remapped to free ones on loopback: the migrations run, every probe and health check
//! named in the manifests answers, and an alert goes through with the example keys.

mod common;

use clap::{CommandFactory, Parser};
use common::{KillOnDrop, free_port};
use mutt_testkit::WebhookReceiver;
use muttd::app::Role;
use muttd::cli::{Cli, Command as MuttCommand};
use muttd::config::{self, Config};
use muttd::secrets::{EnvSecrets, SECRET_NAMES, first_of, key_list};
use serde::Deserialize;
use serde_json::json;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

type Env = BTreeMap<String, String>;

// ---------------------------------------------------------------------------------------------
// Reading the files

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every YAML document of a file, merge keys applied (as Compose does), empty ones skipped.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}"));
            v.apply_merge().unwrap_or_else(|e| panic!("{rel}: {e}"));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// A scalar as text: ports and values may be written as numbers or as strings.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn at_text(v: &Value, path: &[&str]) -> Option<String> {
    at(v, path).and_then(text)
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or(&[])
}

fn texts(v: &[Value]) -> Vec<String> {
    v.iter().filter_map(text).collect()
}

fn text_map(v: Option<&Value>) -> Env {
    let Some(m) = v.and_then(Value::as_mapping) else { return Env::new() };
    m.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect()
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

/// What the Dockerfile's runtime stage sets (and the RUN lines of every stage).
#[derive(Clone, Debug, Default)]
struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Env,
    expose: Vec<u16>,
    user: String,
    workdir: String,
    volumes: Vec<String>,
    healthcheck: Vec<String>,
    /// COPY (source, destination) of the runtime stage.
    copies: Vec<(String, String)>,
    runs: Vec<String>,
}

fn exec_form(rest: &str) -> Vec<String> {
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("Dockerfile: {rest} is no exec-form array: {e}"))
}

fn parse_env(rest: &str, env: &mut Env) {
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.first() {
        Some(w) if !w.contains('=') => {
            env.insert((*w).to_owned(), words[1..].join(" "));
        }
        _ => {
            for (k, v) in words.iter().filter_map(|w| w.split_once('=')) {
                env.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        }
    }
}

fn parse_dockerfile(text: &str) -> Image {
    // Docker drops comment lines before joining continuation lines.
    let joined = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let mut image = Image::default();
    for line in joined.replace("\\\n", " ").lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "FROM" => image = Image { runs: std::mem::take(&mut image.runs), ..Image::default() },
            "RUN" => image.runs.push(rest.to_owned()),
            "ENV" => parse_env(rest, &mut image.env),
            "EXPOSE" => {
                image.expose =
                    rest.split_whitespace().map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port")).collect()
            }
            "USER" => image.user = rest.to_owned(),
            "WORKDIR" => image.workdir = rest.to_owned(),
            "VOLUME" if rest.starts_with('[') => image.volumes = exec_form(rest),
            "VOLUME" => image.volumes = rest.split_whitespace().map(str::to_owned).collect(),
            "ENTRYPOINT" => image.entrypoint = exec_form(rest),
            "CMD" => image.cmd = exec_form(rest),
            "HEALTHCHECK" => {
                let (_, cmd) = rest.split_once("CMD").expect("HEALTHCHECK … CMD");
                image.healthcheck = exec_form(cmd.trim());
            }
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
                if let [src, dst] = words[..] {
                    image.copies.push((src.to_owned(), dst.to_owned()));
                }
            }
            _ => {}
        }
    }
    image
}

fn image() -> Image {
    parse_dockerfile(&read("Dockerfile"))
}

/// The repository file the image installs at `path` (a COPY from the build context).
fn copied_from(image: &Image, path: &str) -> Option<PathBuf> {
    let (src, _) = image.copies.iter().find(|(src, dst)| dst == path && !src.starts_with('/'))?;
    Some(repo().join(src)).filter(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// What muttd reads and serves

/// Names muttd reads: the original's variables, the secrets and their `_FILE` forms, and the
/// command line's environment-backed options. `MUTT_<SECTION>__<KEY>` names are checked with
/// `config::load`, which refuses one that names no setting.
fn names_muttd_reads() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = config::legacy_variable_names().map(str::to_owned).collect();
    for s in SECRET_NAMES {
        names.insert((*s).to_owned());
        names.insert(format!("{s}_FILE"));
    }
    let mut commands = vec![Cli::command()];
    while let Some(cmd) = commands.pop() {
        names.extend(cmd.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()));
        commands.extend(cmd.get_subcommands().cloned());
    }
    names
}

fn variable_problems(origin: &str, env: &Env, known: &BTreeSet<String>) -> Vec<String> {
    let read = |name: &String, value: &String| {
        known.contains(name)
            || (name.starts_with("MUTT_")
                && match config::load(None, &HashMap::from([(name.clone(), value.clone())])) {
                    Ok(_) => true,
                    Err(e) => !e.to_string().contains("no such setting"),
                })
    };
    env.iter()
        .filter(|(name, value)| !read(name, value))
        .map(|(name, _)| format!("{origin}: {name} is no variable muttd reads"))
        .collect()
}

fn parse_command(args: &[String]) -> Result<MuttCommand, String> {
    let argv = std::iter::once("muttd".to_owned()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).map(|c| c.command).map_err(|e| e.to_string())
}

/// The roles a command runs; none for one-shot commands (`migrate`, …).
fn roles_of(cmd: &MuttCommand) -> Vec<Role> {
    match cmd {
        MuttCommand::Run(a) if a.roles.is_empty() => Role::ALL.to_vec(),
        MuttCommand::Run(a) => a.roles.clone(),
        MuttCommand::Ingestor => vec![Role::Ingestor],
        MuttCommand::Alerter(_) => vec![Role::Alerter],
        MuttCommand::Forwarder => vec![Role::Forwarder],
        MuttCommand::Web(_) => vec![Role::Web],
        MuttCommand::Remediation => vec![Role::Remediation],
        _ => Vec::new(),
    }
}

fn role_port(c: &Config, role: Role) -> u16 {
    match role {
        Role::Ingestor => c.ingestor.port,
        Role::Alerter => c.alerter.port,
        Role::Forwarder => c.forwarder.port,
        Role::Web => c.web.port,
        Role::Remediation => c.remediation.port,
    }
}

fn section(role: Role) -> String {
    role.as_str().to_ascii_uppercase()
}

/// A port a role listens on: its own (`/health`, `/live`, `/metrics`, its API), or its
/// separate probe port (`/health`, `/live`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Served {
    role: Role,
    port: u16,
    main: bool,
}

fn served(c: &Config, roles: &[Role]) -> Vec<Served> {
    let health = |role| match role {
        Role::Alerter => c.alerter.health_port,
        Role::Forwarder => c.forwarder.health_port,
        Role::Remediation => c.remediation.health_port,
        Role::Ingestor | Role::Web => None,
    };
    roles
        .iter()
        .flat_map(|&role| {
            let main = Served { role, port: role_port(c, role), main: true };
            std::iter::once(main).chain(health(role).map(|port| Served { role, port, main: false }))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Containers as the manifests describe them

#[derive(Clone, Debug)]
struct Probe {
    kind: String,
    path: String,
    /// A number or a port name.
    port: String,
}

/// One muttd container of a manifest.
#[derive(Clone, Debug, Default)]
struct Container {
    origin: String,
    /// The arguments after the image's entrypoint.
    args: Vec<String>,
    /// The image's ENV, then the manifest's variables, resolved.
    env: Env,
    /// Declared ports: (name, number).
    ports: Vec<(Option<String>, u16)>,
    /// Kubernetes probes.
    probes: Vec<Probe>,
    /// Compose: the health check's command.
    healthcheck: Vec<String>,
    /// Kubernetes: the prometheus.io/port and prometheus.io/path annotations.
    scrape: Option<(String, String)>,
}

/// What a container's arguments and environment make muttd do.
struct Resolved {
    roles: Vec<Role>,
    migrate: bool,
    config: Config,
    served: Vec<Served>,
}

fn resolve(c: &Container, known: &BTreeSet<String>, problems: &mut Vec<String>) -> Option<Resolved> {
    problems.extend(variable_problems(&c.origin, &c.env, known));
    let cmd = match parse_command(&c.args) {
        Ok(cmd) => cmd,
        Err(e) => {
            problems.push(format!("{}: `muttd {}` is no muttd command: {e}", c.origin, c.args.join(" ")));
            return None;
        }
    };
    let env: HashMap<String, String> = c.env.clone().into_iter().collect();
    let config = match config::load(None, &env) {
        Ok(config) => config,
        Err(e) => {
            problems.push(format!("{}: muttd refuses this environment: {e}", c.origin));
            return None;
        }
    };
    let roles = roles_of(&cmd);
    let served = served(&config, &roles);
    Some(Resolved { migrate: matches!(cmd, MuttCommand::Migrate), roles, config, served })
}

/// A production container: Redis and PostgreSQL (not the embedded file inside the container),
/// every listener on the container's address, and the secrets each role needs.
fn production_problems(c: &Container, r: &Resolved) -> Vec<String> {
    let o = &c.origin;
    let mut p = Vec::new();
    let secrets = EnvSecrets::new(c.env.clone().into_iter().collect());
    let has = |names: &[&str]| matches!(first_of(&secrets, names), Ok(Some(_)));
    let keys = |name: &str| key_list(&secrets, name).map(|k| k.len()).unwrap_or(0);
    if muttd::backend::is_embedded(&r.config) {
        p.push(format!("{o}: no Redis or PostgreSQL configured, so muttd would use a file in the container"));
    }
    let store = r.migrate || r.roles.iter().any(|r| matches!(r, Role::Alerter | Role::Web | Role::Remediation));
    if store && (r.config.database.url.is_none() || !has(&["DB_PASS_CURRENT", "DB_PASS"])) {
        p.push(format!("{o}: needs PostgreSQL (DB_HOST …) and its password (DB_PASS_CURRENT)"));
    }
    if !r.roles.is_empty() {
        if r.config.redis.url.is_none() || !has(&["REDIS_PASS_CURRENT", "REDIS_PASS"]) {
            p.push(format!("{o}: needs Redis (REDIS_HOST …) and its password (REDIS_PASS_CURRENT)"));
        }
        if r.config.bind_address != "0.0.0.0" {
            p.push(format!("{o}: muttd listens on {}, not on the container's address", r.config.bind_address));
        }
    }
    for role in &r.roles {
        match role {
            Role::Ingestor if keys("INGEST_API_KEY") == 0 => p.push(format!("{o}: the ingestor has no INGEST_API_KEY")),
            Role::Web if keys("WEBUI_API_KEY") == 0 => p.push(format!("{o}: the web role has no WEBUI_API_KEY")),
            Role::Forwarder => {
                if let Err(e) = r.config.check_forwarder_destination(false) {
                    p.push(format!("{o}: {e}"));
                }
            }
            _ => {}
        }
    }
    p
}

fn describe(served: &[Served]) -> String {
    let ports: Vec<String> = served.iter().map(|s| format!("{} {}", s.role.as_str(), s.port)).collect();
    format!("[{}]", ports.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

type Docs = Vec<(String, Value)>;

fn kube_docs() -> Docs {
    let dir = repo().join("deploy/k8s");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    let docs = |f: &String| {
        let rel = format!("deploy/k8s/{f}");
        yaml_docs(&rel).into_iter().map(move |d| (rel.clone(), d))
    };
    files.iter().flat_map(docs).collect()
}

fn kind(d: &Value) -> String {
    at_text(d, &["kind"]).unwrap_or_default()
}

fn name(d: &Value) -> String {
    at_text(d, &["metadata", "name"]).unwrap_or_default()
}

fn find<'a>(docs: &'a Docs, k: &str, n: &str) -> Option<&'a Value> {
    docs.iter().map(|(_, d)| d).find(|d| kind(d) == k && name(d) == n)
}

/// A workload's pod template, and a pod name such as the API server would give its pods.
fn pod_template(d: &Value) -> Option<(&Value, String)> {
    let n = name(d);
    match kind(d).as_str() {
        "Deployment" => Some((at(d, &["spec", "template"])?, format!("{n}-5c9d7b8f4-x7k2p"))),
        "Job" => Some((at(d, &["spec", "template"])?, format!("{n}-x7k2p"))),
        "CronJob" => Some((at(d, &["spec", "jobTemplate", "spec", "template"])?, format!("{n}-29467210-x7k2p"))),
        _ => None,
    }
}

/// The value of a secretKeyRef or configMapKeyRef; `None` for an optional key that is absent.
fn key_ref(docs: &Docs, r: &Value, kind: &str, origin: &str, problems: &mut Vec<String>) -> Option<String> {
    let (n, key) = (at_text(r, &["name"]).unwrap_or_default(), at_text(r, &["key"]).unwrap_or_default());
    let Some(object) = find(docs, kind, &n) else {
        problems.push(format!("{origin}: {kind} {n} is defined by no manifest"));
        return None;
    };
    let data = if kind == "Secret" { text_map(at(object, &["stringData"])) } else { text_map(at(object, &["data"])) };
    match data.get(&key) {
        Some(v) => Some(v.clone()),
        None if at_text(r, &["optional"]).as_deref() == Some("true") => None,
        None => {
            problems.push(format!("{origin}: {kind} {n} has no key {key}"));
            None
        }
    }
}

/// A container's environment: ConfigMaps from envFrom, then its env entries.
fn kube_env(docs: &Docs, c: &Value, pod: &str, origin: &str, problems: &mut Vec<String>) -> Env {
    let mut env = Env::new();
    for from in seq(c, &["envFrom"]) {
        let n = at_text(from, &["configMapRef", "name"]).unwrap_or_default();
        match find(docs, "ConfigMap", &n) {
            Some(cm) => env.extend(text_map(at(cm, &["data"]))),
            None => problems.push(format!("{origin}: envFrom: ConfigMap {n:?} is defined by no manifest")),
        }
    }
    for e in seq(c, &["env"]) {
        let var = at_text(e, &["name"]).unwrap_or_default();
        let from = |k: &str| at(e, &["valueFrom", k]);
        let value = if let Some(v) = at_text(e, &["value"]) {
            Some(v)
        } else if let Some(r) = from("secretKeyRef") {
            key_ref(docs, r, "Secret", origin, problems)
        } else if let Some(r) = from("configMapKeyRef") {
            key_ref(docs, r, "ConfigMap", origin, problems)
        } else if at_text(e, &["valueFrom", "fieldRef", "fieldPath"]).as_deref() == Some("metadata.name") {
            Some(pod.to_owned())
        } else {
            problems.push(format!("{origin}: {var}: a value this test cannot resolve"));
            None
        };
        env.extend(value.map(|v| (var, v)));
    }
    env
}

/// Non-root, read-only, no capabilities, bounded memory: what the manifests promise.
fn kube_security_problems(origin: &str, pod: &Value, c: &Value, image: &Image) -> Vec<String> {
    let uid = image.user.split(':').next().unwrap_or_default().to_owned();
    let checks = [
        (at_text(pod, &["securityContext", "runAsNonRoot"]).as_deref() == Some("true"), "runAsNonRoot"),
        (at_text(pod, &["securityContext", "runAsUser"]) == Some(uid), "runAsUser as the image's USER"),
        (at_text(c, &["securityContext", "readOnlyRootFilesystem"]).as_deref() == Some("true"), "read-only root"),
        (at_text(c, &["securityContext", "allowPrivilegeEscalation"]).as_deref() == Some("false"), "no escalation"),
        (texts(seq(c, &["securityContext", "capabilities", "drop"])).contains(&"ALL".to_owned()), "drop ALL"),
        (at(c, &["resources", "requests", "memory"]).is_some(), "a memory request"),
        (at(c, &["resources", "limits", "memory"]).is_some(), "a memory limit"),
    ];
    checks.iter().filter(|(ok, _)| !ok).map(|(_, what)| format!("{origin}: missing {what}")).collect()
}

fn kube_container(docs: &Docs, d: &Value, file: &str, image: &Image, problems: &mut Vec<String>) -> Option<Container> {
    let (template, pod_name) = pod_template(d)?;
    let origin = format!("{file}: {} {}", kind(d), name(d));
    let spec = at(template, &["spec"])?;
    let [c] = seq(spec, &["containers"]) else {
        problems.push(format!("{origin}: one container expected"));
        return None;
    };
    if at_text(c, &["image"]) != Some(format!("muttd:{}", version())) {
        problems.push(format!("{origin}: image is not muttd:{}", version()));
    }
    if at(c, &["command"]).is_some() {
        problems.push(format!("{origin}: `command` replaces the image's entrypoint; give `args`"));
    }
    problems.extend(kube_security_problems(&origin, spec, c, image));
    let mut env = image.env.clone();
    env.extend(kube_env(docs, c, &pod_name, &origin, problems));
    let probe = |k: &str| {
        let p = at(c, &[k])?;
        let port = at_text(p, &["httpGet", "port"]).unwrap_or_default();
        Some(Probe { kind: k.to_owned(), path: at_text(p, &["httpGet", "path"]).unwrap_or_default(), port })
    };
    let annotations = text_map(at(template, &["metadata", "annotations"]));
    let scrape = annotations.get("prometheus.io/port").map(|port| {
        (port.clone(), annotations.get("prometheus.io/path").cloned().unwrap_or_else(|| "/metrics".into()))
    });
    Some(Container {
        args: at(c, &["args"]).map_or_else(|| image.cmd.clone(), |_| texts(seq(c, &["args"]))),
        env,
        ports: seq(c, &["ports"])
            .iter()
            .map(|p| (at_text(p, &["name"]), at_text(p, &["containerPort"]).and_then(|n| n.parse().ok()).unwrap_or(0)))
            .collect(),
        probes: ["readinessProbe", "livenessProbe", "startupProbe"].iter().filter_map(|k| probe(k)).collect(),
        healthcheck: Vec::new(),
        scrape,
        origin,
    })
}

fn kube_containers(docs: &Docs, image: &Image, problems: &mut Vec<String>) -> Vec<Container> {
    docs.iter().filter_map(|(file, d)| kube_container(docs, d, file, image, problems)).collect()
}

/// A port number, or the number of the container port with that name.
fn port_number(c: &Container, port: &str) -> Option<u16> {
    port.parse().ok().or_else(|| c.ports.iter().find(|(n, _)| n.as_deref() == Some(port)).map(|(_, p)| *p))
}

/// Ports, probes and the scrape annotation against the ports where the role serves them.
fn kube_port_problems(c: &Container, r: &Resolved) -> Vec<String> {
    let (o, mut p) = (&c.origin, Vec::new());
    let serves = |port: u16| r.served.iter().any(|s| s.port == port);
    for (_, port) in c.ports.iter().filter(|(_, port)| !serves(*port)) {
        p.push(format!("{o}: containerPort {port} is none of the ports muttd serves here {}", describe(&r.served)));
    }
    for s in r.served.iter().filter(|s| s.main && !c.ports.iter().any(|(_, port)| *port == s.port)) {
        p.push(format!("{o}: the {} port {} is not declared", s.role.as_str(), s.port));
    }
    for probe in &c.probes {
        let paths: &[&str] = match probe.kind.as_str() {
            "readinessProbe" => &["/health"],
            "livenessProbe" => &["/live"],
            _ => &["/live", "/health"],
        };
        if !paths.contains(&probe.path.as_str()) {
            p.push(format!("{o}: {} path {} is not {}", probe.kind, probe.path, paths.join(" or ")));
        }
        if !port_number(c, &probe.port).is_some_and(serves) {
            p.push(format!(
                "{o}: {} port {} is none of the ports muttd serves {}",
                probe.kind,
                probe.port,
                describe(&r.served)
            ));
        }
    }
    let kinds: BTreeSet<&str> = c.probes.iter().map(|p| p.kind.as_str()).collect();
    if r.roles.is_empty() {
        if !c.probes.is_empty() || !c.ports.is_empty() {
            p.push(format!("{o}: a one-shot command with ports or probes"));
        }
        return p;
    }
    if !(kinds.contains("readinessProbe") && kinds.contains("livenessProbe")) {
        p.push(format!("{o}: a role needs a readiness and a liveness probe"));
    }
    let metrics = r.served.iter().filter(|s| s.main).map(|s| s.port.to_string()).collect::<Vec<_>>();
    match &c.scrape {
        Some((port, path)) if metrics.contains(port) && path == "/metrics" => {}
        other => p.push(format!("{o}: prometheus.io annotations {other:?}: /metrics is on {metrics:?}")),
    }
    p
}

/// Namespaces, the kustomization, Deployments' PDBs, Services, and the HPA with its adapter rule.
fn kube_object_problems(docs: &Docs, resolved: &BTreeMap<String, (Container, Resolved)>) -> Vec<String> {
    let mut p = Vec::new();
    for (file, d) in docs.iter().filter(|(_, d)| at(d, &["metadata", "namespace"]).is_some()) {
        p.push(format!("{file}: {} {} names a namespace", kind(d), name(d)));
    }
    p.extend(kustomization_problems(docs));
    let labels = |d: &Value| text_map(at(d, &["spec", "template", "metadata", "labels"]));
    let selects = |sel: &Env, d: &Value| !sel.is_empty() && sel.iter().all(|(k, v)| labels(d).get(k) == Some(v));
    let deployments: Vec<&Value> = docs.iter().map(|(_, d)| d).filter(|d| kind(d) == "Deployment").collect();
    for d in &deployments {
        let own = text_map(at(d, &["spec", "selector", "matchLabels"]));
        if !selects(&own, d) {
            p.push(format!("Deployment {}: its selector does not match its pods", name(d)));
        }
        let mut pdbs = docs.iter().map(|(_, b)| b).filter(|b| kind(b) == "PodDisruptionBudget");
        if !pdbs.any(|b| selects(&text_map(at(b, &["spec", "selector", "matchLabels"])), d)) {
            p.push(format!("Deployment {}: no PodDisruptionBudget selects its pods", name(d)));
        }
    }
    for s in docs.iter().map(|(_, d)| d).filter(|d| kind(d) == "Service") {
        let sel = text_map(at(s, &["spec", "selector"]));
        let Some(d) = deployments.iter().find(|d| selects(&sel, d)) else {
            p.push(format!("Service {}: selects no Deployment's pods", name(s)));
            continue;
        };
        let Some((c, _)) = resolved.get(&format!("Deployment {}", name(d))) else { continue };
        for port in seq(s, &["spec", "ports"]) {
            let target = at_text(port, &["targetPort"]).or_else(|| at_text(port, &["port"])).unwrap_or_default();
            if !port_number(c, &target).is_some_and(|t| c.ports.iter().any(|(_, n)| *n == t)) {
                p.push(format!("Service {}: targetPort {target} is no port of {}", name(s), name(d)));
            }
        }
    }
    p.extend(hpa_problems(docs, resolved));
    p
}

/// Every manifest is applied by the kustomization except the documented opt-ins; the image tag
/// is this version.
fn kustomization_problems(docs: &Docs) -> Vec<String> {
    const OPT_IN: [&str; 2] = ["secret-example.yaml", "alerter-hpa.yaml"];
    let mut p = Vec::new();
    let Some((_, k)) = docs.iter().find(|(_, d)| kind(d) == "Kustomization") else {
        return vec!["deploy/k8s: no kustomization.yaml".into()];
    };
    let listed = texts(seq(k, &["resources"]));
    let files: BTreeSet<&str> = docs.iter().filter_map(|(f, _)| f.strip_prefix("deploy/k8s/")).collect();
    for f in files.iter().filter(|f| **f != "kustomization.yaml" && !OPT_IN.contains(f)) {
        if !listed.iter().any(|l| l == f) {
            p.push(format!("deploy/k8s/{f} is not in kustomization.yaml's resources"));
        }
    }
    for l in listed.iter().filter(|l| !files.contains(l.as_str())) {
        p.push(format!("kustomization.yaml lists {l}, which does not exist"));
    }
    for image in seq(k, &["images"]) {
        if at_text(image, &["newTag"]).as_deref() != Some(version()) {
            p.push(format!("kustomization.yaml: image tag is not {}", version()));
        }
    }
    p
}

/// The HPA scales a Deployment that runs the alerter alone, on the metric the adapter rule
/// makes from `mutt_queue_depth{queue=<the alerter's ingest queue>}`.
fn hpa_problems(docs: &Docs, resolved: &BTreeMap<String, (Container, Resolved)>) -> Vec<String> {
    let mut p = Vec::new();
    let adapter = yaml_docs("deploy/k8s/prometheus-adapter/values.yaml");
    let rules = adapter.first().map(|a| seq(a, &["rules", "external"])).unwrap_or(&[]);
    for hpa in docs.iter().map(|(_, d)| d).filter(|d| kind(d) == "HorizontalPodAutoscaler") {
        let target = format!("Deployment {}", at_text(hpa, &["spec", "scaleTargetRef", "name"]).unwrap_or_default());
        let Some((_, r)) = resolved.get(&target).filter(|(_, r)| r.roles == [Role::Alerter]) else {
            p.push(format!("HPA {}: {target} is not an alerter Deployment", name(hpa)));
            continue;
        };
        let queue = r.config.redis.keys().ingest_queue;
        let selector = format!("mutt_queue_depth{{queue=\"{queue}\",");
        for m in seq(hpa, &["spec", "metrics"]) {
            let metric = at_text(m, &["external", "metric", "name"]).unwrap_or_default();
            let rule = rules.iter().find(|r| at_text(r, &["name", "as"]).as_deref() == Some(metric.as_str()));
            let queries = rule.map(|r| [at_text(r, &["seriesQuery"]), at_text(r, &["metricsQuery"])]);
            let ok = queries.is_some_and(|q| q.iter().all(|q| q.as_ref().is_some_and(|q| q.contains(&selector))));
            if !ok {
                p.push(format!("HPA {}: no adapter rule makes {metric:?} from {selector}…}}", name(hpa)));
            }
        }
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Compose

fn compose() -> Value {
    yaml_docs("deploy/compose.yaml").into_iter().next().expect("deploy/compose.yaml is empty")
}

/// Compose's interpolation with nothing set in the calling shell: `${NAME:-default}` gives the
/// default, `$$` a `$`.
fn interpolate(s: &str) -> String {
    let (mut out, mut rest) = (String::new(), s);
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some((expr, r)) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            out.push_str(expr.split_once(":-").or_else(|| expr.split_once('-')).map(|(_, d)| d).unwrap_or(""));
            rest = r;
        } else {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        }
    }
    out + rest
}

fn compose_env(v: Option<&Value>) -> Env {
    match v {
        Some(Value::Sequence(items)) => {
            texts(items).iter().filter_map(|i| i.split_once('=')).map(|(k, v)| (k.to_owned(), interpolate(v))).collect()
        }
        other => text_map(other).into_iter().map(|(k, v)| (k, interpolate(&v))).collect(),
    }
}

/// `<NAME>_FILE=/run/secrets/<secret>`: the secret must be given to the service and defined at
/// the top level; the path is replaced by a file in `dir` holding a generated value.
fn compose_secret_files(origin: &str, svc: &Value, doc: &Value, env: &mut Env, dir: &Path) -> Vec<String> {
    let mut p = Vec::new();
    let granted: Vec<String> =
        seq(svc, &["secrets"]).iter().filter_map(|s| text(s).or_else(|| at_text(s, &["source"]))).collect();
    for (var, path) in env.iter_mut().filter(|(k, _)| k.ends_with("_FILE")) {
        let Some(secret) = path.strip_prefix("/run/secrets/").map(str::to_owned) else { continue };
        if !granted.contains(&secret) || at_text(doc, &["secrets", secret.as_str(), "file"]).is_none() {
            p.push(format!("{origin}: {var} names secret {secret}, which the service is not given"));
        }
        let file = dir.join(&secret);
        std::fs::write(&file, format!("compose-{secret}-value\n")).expect("write secret");
        *path = file.display().to_string();
    }
    p
}

fn compose_ports(svc: &Value) -> Vec<(Option<String>, u16)> {
    let target = |p: &Value| match p {
        Value::String(s) => s.rsplit(':').next().and_then(|t| t.trim_end_matches("/tcp").parse().ok()),
        other => at_text(other, &["target"]).and_then(|t| t.parse().ok()),
    };
    seq(svc, &["ports"]).iter().map(|p| (None, target(p).unwrap_or(0))).collect()
}

/// The muttd services (the image is muttd's), with their secrets' files in `dir`.
fn compose_containers(doc: &Value, image: &Image, dir: &Path, problems: &mut Vec<String>) -> Vec<Container> {
    let services = at(doc, &["services"]).and_then(Value::as_mapping).expect("compose: services");
    let mut out = Vec::new();
    for (svc_name, svc) in services {
        let Some(img) = at_text(svc, &["image"]).filter(|i| i.starts_with("muttd")) else { continue };
        let origin = format!("deploy/compose.yaml: service {}", text(svc_name).unwrap_or_default());
        if img != format!("muttd:{}", version()) {
            problems.push(format!("{origin}: image {img} is not muttd:{}", version()));
        }
        let context = repo().join("deploy").join(at_text(svc, &["build", "context"]).unwrap_or_default());
        if context.canonicalize().ok() != repo().canonicalize().ok() {
            problems.push(format!("{origin}: not built from the repository's Dockerfile"));
        }
        let args = match at(svc, &["command"]) {
            Some(Value::Sequence(a)) => texts(a),
            Some(other) => text(other).unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
            None => image.cmd.clone(),
        };
        let mut env = image.env.clone();
        env.extend(compose_env(at(svc, &["environment"])));
        problems.extend(compose_secret_files(&origin, svc, doc, &mut env, dir));
        let healthcheck = texts(seq(svc, &["healthcheck", "test"]));
        out.push(Container { origin, args, env, ports: compose_ports(svc), healthcheck, ..Container::default() });
    }
    out
}

/// Published ports, health checks, and the start order (roles with a store after the migration).
fn compose_service_problems(c: &Container, r: &Resolved, image: &Image, doc: &Value) -> Vec<String> {
    let (o, mut p) = (&c.origin, Vec::new());
    for (_, port) in c.ports.iter().filter(|(_, port)| !r.served.iter().any(|s| s.port == *port)) {
        p.push(format!("{o}: port {port} is none of the ports muttd serves here {}", describe(&r.served)));
    }
    if !r.roles.is_empty() {
        let script = image.healthcheck.first().cloned().unwrap_or_default();
        match c.healthcheck.as_slice() {
            [cmd, path, ports @ ..] if cmd == "CMD" && *path == script => {
                for port in ports.iter().filter(|port| !r.served.iter().any(|s| s.main && s.port.to_string() == **port))
                {
                    p.push(format!("{o}: health check port {port} is none of the role ports {}", describe(&r.served)));
                }
            }
            other => p.push(format!("{o}: health check {other:?} is not [CMD, {script}, <port>…]")),
        }
    }
    let service = o.rsplit(' ').next().unwrap_or_default();
    let deps = at(doc, &["services", service, "depends_on"]).and_then(Value::as_mapping);
    let migrate_first = deps.is_some_and(|deps| {
        deps.iter().any(|(dep, cond)| {
            let dep_args = text(dep).map(|d| texts(seq(doc, &["services", d.as_str(), "command"])));
            dep_args.is_some_and(|a| a == ["migrate"])
                && at_text(cond, &["condition"]).as_deref() == Some("service_completed_successfully")
        })
    });
    if r.roles.iter().any(|r| matches!(r, Role::Alerter | Role::Web)) && !migrate_first {
        p.push(format!("{o}: does not wait for the migration to complete"));
    }
    p
}

// ---------------------------------------------------------------------------------------------
// The checks over each file

fn image_problems(image: &Image, known: &BTreeSet<String>) -> Vec<String> {
    let mut p = Vec::new();
    let installed = |e: &String| e.ends_with("/muttd") && image.copies.iter().any(|(_, dst)| dst == e);
    if !image.entrypoint.first().is_some_and(installed) {
        p.push(format!("Dockerfile: ENTRYPOINT {:?} is not the muttd binary", image.entrypoint));
    }
    // The dist profile: what ships is built like what scripts/bench.sh measures.
    if !image.runs.iter().any(|r| r.contains("cargo build --profile dist --locked -p muttd")) {
        p.push("Dockerfile: no `cargo build --profile dist --locked -p muttd`".into());
    }
    let c = Container {
        origin: "Dockerfile".into(),
        args: image.cmd.clone(),
        env: image.env.clone(),
        ..Default::default()
    };
    if let Some(r) = resolve(&c, known, &mut p) {
        if r.roles != Role::ALL || r.config.bind_address != "0.0.0.0" {
            p.push(format!("Dockerfile: CMD runs {:?} on {}", r.roles, r.config.bind_address));
        }
        let mut expose = image.expose.clone();
        expose.sort_unstable();
        let mut ports: Vec<u16> = r.served.iter().map(|s| s.port).collect();
        ports.sort_unstable();
        if expose != ports {
            p.push(format!("Dockerfile: EXPOSE {expose:?}, but muttd run serves {}", describe(&r.served)));
        }
        let data = r.config.data_dir.display().to_string();
        if image.volumes != [data.clone()] || image.workdir != data {
            p.push(format!("Dockerfile: the data directory {data} is not the VOLUME and WORKDIR"));
        }
    }
    if image.user.split(':').next().and_then(|u| u.parse::<u32>().ok()).is_none_or(|u| u == 0) {
        p.push(format!("Dockerfile: USER {} is not a numeric non-root user", image.user));
    }
    match image.healthcheck.first().and_then(|h| copied_from(image, h)) {
        Some(script) => p.extend(healthcheck_script_problems(&std::fs::read_to_string(script).unwrap_or_default())),
        None => p.push(format!("Dockerfile: HEALTHCHECK {:?} is no script of this repository", image.healthcheck)),
    }
    p
}

/// The script's `${MUTT_<ROLE>__PORT:-${<ORIGINAL>:-<default>}}`: both variables set that
/// role's port, and the default is the role's default port.
fn healthcheck_script_problems(script: &str) -> Vec<String> {
    let mut p = Vec::new();
    let mut seen = Vec::new();
    for part in script.split("${MUTT_").skip(1) {
        let Some((sect, rest)) = part.split_once("__PORT:-${") else { continue };
        let Some((original, rest)) = rest.split_once(":-") else { continue };
        let default = rest.split('}').next().unwrap_or_default();
        let Some(&role) = Role::ALL.iter().find(|r| section(**r) == sect) else {
            p.push(format!("muttd-healthcheck: MUTT_{sect}__PORT names no role"));
            continue;
        };
        seen.push(role);
        if default != role_port(&Config::default(), role).to_string() {
            p.push(format!("muttd-healthcheck: the {} port defaults to {default}", role.as_str()));
        }
        for var in [format!("MUTT_{sect}__PORT"), original.to_owned()] {
            let set = config::load(None, &HashMap::from([(var.clone(), "12345".to_owned())]));
            if set.map(|c| role_port(&c, role)).ok() != Some(12345) {
                p.push(format!("muttd-healthcheck: {var} does not set the {} port", role.as_str()));
            }
        }
    }
    if seen != Role::ALL {
        p.push(format!("muttd-healthcheck: default ports for {seen:?}, not for every role"));
    }
    p
}

/// Every problem of the Kubernetes manifests, and the containers with what they resolve to.
fn kubernetes_problems(docs: &Docs, image: &Image) -> (Vec<String>, BTreeMap<String, (Container, Resolved)>) {
    let known = names_muttd_reads();
    let mut p = Vec::new();
    let mut resolved = BTreeMap::new();
    for c in kube_containers(docs, image, &mut p) {
        let Some(r) = resolve(&c, &known, &mut p) else { continue };
        p.extend(production_problems(&c, &r));
        p.extend(kube_port_problems(&c, &r));
        let key = c.origin.split(": ").nth(1).unwrap_or_default().to_owned();
        resolved.insert(key, (c, r));
    }
    p.extend(kube_object_problems(docs, &resolved));
    (p, resolved)
}

fn compose_problems(doc: &Value, image: &Image, dir: &Path) -> (Vec<String>, Vec<(Container, Resolved)>) {
    let known = names_muttd_reads();
    let mut p = Vec::new();
    let mut resolved = Vec::new();
    for c in compose_containers(doc, image, dir, &mut p) {
        let Some(r) = resolve(&c, &known, &mut p) else { continue };
        p.extend(production_problems(&c, &r));
        p.extend(compose_service_problems(&c, &r, image, doc));
        resolved.push((c, r));
    }
    (p, resolved)
}

fn assert_none(problems: &[String]) {
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_dockerfile_exposes_runs_and_health_checks_what_muttd_serves() {
    assert_none(&image_problems(&image(), &names_muttd_reads()));
}

#[test]
fn the_kubernetes_manifests_match_what_muttd_reads_and_serves() {
    let (problems, resolved) = kubernetes_problems(&kube_docs(), &image());
    assert_none(&problems);
    let names: Vec<&String> = resolved.keys().collect();
    assert_eq!(
        names,
        [
            "Deployment mutt-alerter",
            "Deployment mutt-forwarder",
            "Deployment mutt-ingestor",
            "Deployment mutt-remediation",
            "Deployment mutt-web",
            "Job mutt-migrate"
        ]
    );
}

#[test]
fn the_compose_file_matches_what_muttd_reads_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (problems, resolved) = compose_problems(&compose(), &image(), dir.path());
    assert_none(&problems);
    let roles: Vec<Vec<Role>> = resolved.iter().map(|(_, r)| r.roles.clone()).collect();
    assert_eq!(
        roles,
        [
            vec![],
            vec![Role::Ingestor],
            vec![Role::Alerter],
            vec![Role::Forwarder],
            vec![Role::Web],
            vec![Role::Remediation]
        ]
    );
}

fn yaml(s: &str) -> Value {
    serde_norway::from_str(s).unwrap()
}

/// The checks bite: a wrong probe port, path, variable, command, published port or EXPOSE is
/// reported.
#[test]
fn a_wrong_port_path_variable_or_command_is_reported() {
    fn container<'a>(docs: &'a mut Docs, deployment: &str) -> &'a mut Value {
        let (_, d) = docs.iter_mut().find(|(_, d)| kind(d) == "Deployment" && name(d) == deployment).unwrap();
        &mut d["spec"]["template"]["spec"]["containers"][0]
    }
    let image = image();
    let mut docs = kube_docs();
    container(&mut docs, "mutt-alerter")["readinessProbe"]["httpGet"]["port"] = Value::from(8082);
    container(&mut docs, "mutt-forwarder")["livenessProbe"]["httpGet"]["path"] = Value::from("/healthz");
    let web_env = container(&mut docs, "mutt-web")["env"].as_sequence_mut().unwrap();
    web_env.push(yaml("{name: WEBUI_PORT, value: '8090'}"));
    container(&mut docs, "mutt-ingestor")["args"] = yaml("[ingest]");
    let (problems, _) = kubernetes_problems(&docs, &image);
    let expected = [
        "Deployment mutt-alerter: readinessProbe port 8082 is none of the ports muttd serves [alerter 8081]",
        "Deployment mutt-forwarder: livenessProbe path /healthz is not /live",
        "Deployment mutt-web: WEBUI_PORT is no variable muttd reads",
        "Deployment mutt-ingestor: `muttd ingest` is no muttd command",
    ];
    for e in expected {
        assert!(problems.iter().any(|p| p.contains(e)), "{e:?} not reported: {problems:#?}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");

    let mut doc = compose();
    doc["services"]["forwarder"]["healthcheck"]["test"][2] = Value::from("8084");
    doc["services"]["web"]["ports"][0]["target"] = Value::from(8091);
    doc["services"]["alerter"]["environment"]["MUTT_ALERTER__BATCH"] = Value::from("50");
    let dir = tempfile::tempdir().unwrap();
    let (problems, _) = compose_problems(&doc, &image, dir.path());
    let expected = [
        "service forwarder: health check port 8084 is none of the role ports [forwarder 8083]",
        "service web: port 8091 is none of the ports muttd serves here [web 8090]",
        "service alerter: MUTT_ALERTER__BATCH is no variable muttd reads",
    ];
    for e in expected {
        assert!(problems.iter().any(|p| p.contains(e)), "{e:?} not reported: {problems:#?}");
    }

    let mut wrong = image.clone();
    wrong.expose = vec![8080, 8081, 8082, 8090];
    let problems = image_problems(&wrong, &names_muttd_reads());
    assert!(problems.iter().any(|p| p.starts_with("Dockerfile: EXPOSE [8080, 8081, 8082, 8090]")), "{problems:#?}");
}

// ---------------------------------------------------------------------------------------------
// Running them

/// A `muttd` process with a container's arguments and an environment; killed when dropped.
struct Proc {
    child: KillOnDrop,
    origin: String,
    log: PathBuf,
}

impl Proc {
    fn start(c: &Container, env: &Env, dir: &Path) -> Proc {
        let log = dir.join(format!("{}.log", c.origin.replace(['/', ' ', ':'], "_")));
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_muttd"))
            .args(&c.args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn muttd");
        Proc { child: KillOnDrop(child), origin: c.origin.clone(), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with the process's log unless `ok` returns true within 30 s.
    async fn wait_until(&mut self, what: &str, mut ok: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                panic!("{}: exited ({status}) before {what}:\n{}", self.origin, self.log());
            }
            if ok().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{}: not {what} within 30 s:\n{}", self.origin, self.log());
    }

    async fn run_to_completion(mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                assert!(status.success(), "{}: {status}:\n{}", self.origin, self.log());
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{}: still running after 60 s:\n{}", self.origin, self.log());
    }
}

/// The test services in place of the manifests' Redis, PostgreSQL and Moogsoft.
struct Site {
    redis: String,
    prefix: String,
    database: String,
    receiver: WebhookReceiver,
    dir: tempfile::TempDir,
}

impl Site {
    async fn new() -> Site {
        Site {
            redis: mutt_testkit::redis_url(),
            prefix: mutt_testkit::unique_prefix(),
            database: mutt_testkit::fresh_database().await,
            receiver: WebhookReceiver::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn alerts_file(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }

    /// A container's environment for this site: the connections to the test services (which
    /// have no passwords), loopback, free ports. Returns it with the manifest's ports → the
    /// ports used here.
    fn env(&self, c: &Container, r: &Resolved) -> (Env, HashMap<u16, u16>) {
        let mut env = c.env.clone();
        env.retain(|k, _| !k.starts_with("REDIS_PASS") && !k.starts_with("DB_PASS"));
        let data = self.dir.path().display().to_string();
        let alerts = self.alerts_file().display().to_string();
        for (k, v) in [
            ("MUTT_REDIS__URL", self.redis.as_str()),
            ("MUTT_REDIS__KEY_PREFIX", &self.prefix),
            ("MUTT_DATABASE__URL", &self.database),
            ("MUTT_BIND_ADDRESS", "127.0.0.1"),
            ("MUTT_DATA_DIR", &data),
            ("MUTT_LOG__LEVEL", "warn"),
            ("MUTT_WORKER__BLOCK_TIMEOUT_SECS", "0.2"),
        ] {
            env.insert(k.into(), v.into());
        }
        if env.get("MOOG_WEBHOOK_URL").is_some_and(|u| !u.is_empty()) {
            env.insert("MOOG_WEBHOOK_URL".into(), self.receiver.url());
        }
        if env.contains_key("MUTT_FORWARDER__ALERTS_FILE") {
            env.insert("MUTT_FORWARDER__ALERTS_FILE".into(), alerts);
        }
        let mut ports = HashMap::new();
        for s in &r.served {
            let (here, key) = (free_port(), if s.main { "PORT" } else { "HEALTH_PORT" });
            env.insert(format!("MUTT_{}__{key}", section(s.role)), here.to_string());
            ports.insert(s.port, here);
        }
        (env, ports)
    }
}

async fn get_status(http: &reqwest::Client, url: &str) -> u16 {
    http.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// A running role container: its process, the manifest's ports → its ports here, its
/// environment here.
struct Running {
    proc: Proc,
    ports: HashMap<u16, u16>,
    served: Vec<Served>,
    env: Env,
}

impl Running {
    fn runs(&self, role: Role) -> bool {
        self.served.iter().all(|s| s.role == role)
    }

    /// `path` on the role's own port here.
    fn url(&self, path: &str) -> String {
        let main = self.served.iter().find(|s| s.main).expect("a role port");
        format!("http://127.0.0.1:{}{path}", self.ports[&main.port])
    }

    fn key(&self, name: &str) -> String {
        let secrets = EnvSecrets::new(self.env.clone().into_iter().collect());
        let keys = key_list(&secrets, name).unwrap();
        keys.first().map(|k| k.expose().to_owned()).unwrap_or_else(|| panic!("{}: no {name}", self.proc.origin))
    }
}

/// Runs the one-shot containers to completion, then starts the role containers.
async fn start_all(site: &Site, containers: &[(Container, Resolved)]) -> Vec<Running> {
    for (c, r) in containers.iter().filter(|(_, r)| r.roles.is_empty()) {
        let (env, _) = site.env(c, r);
        Proc::start(c, &env, site.dir.path()).run_to_completion().await;
    }
    let mut running = Vec::new();
    for (c, r) in containers.iter().filter(|(_, r)| !r.roles.is_empty()) {
        let (env, ports) = site.env(c, r);
        running.push(Running { proc: Proc::start(c, &env, site.dir.path()), ports, served: r.served.clone(), env });
    }
    running
}

/// Through the processes the manifests describe, with their keys: a rule created on the web
/// role, an event posted to the ingestor, its alert at the forwarder's destination.
async fn an_alert_goes_through(site: &Site, running: &[Running]) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let role = |role: Role| running.iter().find(|r| r.runs(role)).expect("a container per role");
    let (ingestor, web) = (role(Role::Ingestor), role(Role::Web));
    let rule = json!({"match_string": "LINK-DOWN", "match_type": "contains", "priority": 5,
        "prod_handling": "Page_and_ticket", "dev_handling": "Ticket_only", "team_assignment": "NetOps"});
    let created = http
        .post(web.url("/api/v2/rules"))
        .header("X-API-KEY", web.key("WEBUI_API_KEY"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201, "{}", created.text().await.unwrap_or_default());
    let marker = format!("LINK-DOWN deploy-check {}", uuid::Uuid::new_v4());
    let event = json!({"hostname": "router1", "message": marker, "timestamp": chrono::Utc::now().to_rfc3339()});
    let ingest = ingestor.url("/ingest");
    let refused = http.post(&ingest).json(&event).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401, "no key, no entry");
    let accepted = http.post(&ingest).header("X-API-KEY", ingestor.key("INGEST_API_KEY")).json(&event).send().await;
    let accepted = accepted.unwrap();
    assert!(accepted.status().is_success(), "{}", accepted.text().await.unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = site.receiver.accepted().iter().any(|r| r.body.to_string().contains(&marker));
        let written = std::fs::read_to_string(site.alerts_file()).unwrap_or_default().contains(&marker);
        if delivered || written {
            return;
        }
        assert!(Instant::now() < deadline, "the alert for {marker:?} did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_default_command_passes_its_health_check() {
    let image = image();
    let dir = tempfile::tempdir().unwrap();
    let c = Container { origin: "Dockerfile CMD".into(), args: image.cmd.clone(), ..Default::default() };
    // The image's environment, on loopback, in a temporary data directory, on free ports that
    // the health check finds through the same variables.
    let mut env = image.env.clone();
    env.insert("MUTT_BIND_ADDRESS".into(), "127.0.0.1".into());
    env.insert("MUTT_DATA_DIR".into(), dir.path().display().to_string());
    env.insert("MUTT_LOG__LEVEL".into(), "warn".into());
    for role in Role::ALL {
        env.insert(format!("MUTT_{}__PORT", section(role)), free_port().to_string());
    }
    // `muttd run`'s syslog and trap listeners on ports of their own too (5514, 1162 by default).
    env.insert("MUTT_INGESTOR__RUN_SYSLOG_ADDRESS".into(), "127.0.0.1:0".into());
    env.insert("MUTT_INGESTOR__RUN_TRAPS_ADDRESS".into(), "127.0.0.1:0".into());
    let script = image.healthcheck.first().and_then(|h| copied_from(&image, h)).expect("the health-check script");
    let path = std::env::var("PATH").unwrap_or_default();
    let healthy = || {
        let mut check = Command::new("bash");
        check.arg(&script).env_clear().envs(&env).env("PATH", &path).stderr(Stdio::null());
        check.status().is_ok_and(|s| s.success())
    };
    assert!(!healthy(), "unhealthy while nothing listens");
    let mut run = Proc::start(&c, &env, dir.path());
    run.wait_until("passing the image's health check", async || healthy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_workloads_run_answer_their_probes_and_carry_an_alert() {
    let (problems, resolved) = kubernetes_problems(&kube_docs(), &image());
    assert_none(&problems);
    let containers: Vec<(Container, Resolved)> = resolved.into_values().collect();
    let site = Site::new().await;
    let mut running = start_all(&site, &containers).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let roles = containers.iter().map(|(c, _)| c).filter(|c| !c.probes.is_empty());
    for (run, c) in running.iter_mut().zip(roles) {
        assert_eq!(run.proc.origin, c.origin);
        for probe in &c.probes {
            let port = run.ports[&port_number(c, &probe.port).expect("probe port")];
            let url = format!("http://127.0.0.1:{port}{}", probe.path);
            run.proc
                .wait_until(&format!("answering its {} {url}", probe.kind), async || {
                    get_status(&http, &url).await == 200
                })
                .await;
        }
    }
    an_alert_goes_through(&site, &running).await;
    // The HPA's metric, with the queue label the adapter rule selects on (this site's prefix).
    let alerter = running.iter_mut().find(|r| r.runs(Role::Alerter)).unwrap();
    let live = config::load(None, &alerter.env.clone().into_iter().collect()).unwrap();
    let series = format!("mutt_queue_depth{{queue=\"{}\"}}", live.redis.keys().ingest_queue);
    let url = alerter.url("/metrics");
    let has_series = async || match http.get(&url).send().await {
        Ok(r) => r.text().await.unwrap_or_default().contains(&series),
        Err(_) => false,
    };
    alerter.proc.wait_until(&format!("exporting {series}"), has_series).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_services_run_pass_their_health_checks_and_carry_an_alert() {
    let site = Site::new().await;
    let image = image();
    let (problems, containers) = compose_problems(&compose(), &image, site.dir.path());
    assert_none(&problems);
    let mut running = start_all(&site, &containers).await;
    let script = image.healthcheck.first().and_then(|h| copied_from(&image, h)).expect("the health-check script");
    let roles = containers.iter().map(|(c, _)| c).filter(|c| !c.healthcheck.is_empty());
    for (run, c) in running.iter_mut().zip(roles) {
        assert_eq!(run.proc.origin, c.origin);
        let ports: Vec<String> =
            c.healthcheck[2..].iter().map(|p| run.ports[&p.parse::<u16>().expect("a port")].to_string()).collect();
        let healthy = || Command::new("bash").arg(&script).args(&ports).stderr(Stdio::null()).status();
        run.proc.wait_until("passing its health check", async || healthy().is_ok_and(|s| s.success())).await;
    }
    an_alert_goes_through(&site, &running).await;
}
