//! A PostgreSQL server owned by one test (for outage tests): initdb in a temporary directory,
//! `pg_ctl` start/stop, run as the `postgres` user when the tests run as root.

use std::path::PathBuf;
use std::process::Command;

pub struct PostgresServer {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
    /// Extra `postgres -c` settings (TLS).
    extra: String,
}

fn pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(b) = std::env::var_os("MUTT_TEST_PG_BIN") {
        return Ok(b.into());
    }
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql")?.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect();
    dirs.sort();
    dirs.pop().ok_or_else(|| anyhow::anyhow!("no PostgreSQL server binaries under /usr/lib/postgresql"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl PostgresServer {
    pub fn start() -> anyhow::Result<Self> {
        let mut s = Self::init()?;
        s.start_again()?;
        Ok(s)
    }

    /// Starts a server with production durability (`fsync`, `synchronous_commit` and
    /// `full_page_writes` on), for benchmarks; the later `-c` settings win over `fsync=off`.
    pub fn start_durable() -> anyhow::Result<Self> {
        Self::start_configured(true, &[])
    }

    /// Starts a server, durable as [`PostgresServer::start_durable`] or not, with more
    /// `name=value` settings (`shared_buffers=512MB`), for benchmarks of a tuned server.
    pub fn start_configured(durable: bool, settings: &[String]) -> anyhow::Result<Self> {
        let mut s = Self::init()?;
        if durable {
            s.extra = " -c fsync=on -c synchronous_commit=on -c full_page_writes=on".into();
        }
        for setting in settings {
            anyhow::ensure!(
                setting.contains('=') && !setting.contains(char::is_whitespace),
                "a PostgreSQL setting is name=value without spaces: {setting:?}"
            );
            s.extra.push_str(&format!(" -c {setting}"));
        }
        s.start_again()?;
        Ok(s)
    }

    /// Starts a server that also speaks TLS with `cert`/`key` (PEM, copied into its directory,
    /// where the server's user can read them). Connections over TLS from 127.0.0.1 must give
    /// the password `tls_password` (SCRAM); plain ones stay trusted, for the test's own checks.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path, tls_password: &str) -> anyhow::Result<Self> {
        let s = Self::start_ssl(cert, key, None, "scram-sha-256")?;
        s.psql(&format!("ALTER ROLE mutt PASSWORD '{}'", tls_password.replace('\'', "''")))?;
        Ok(s)
    }

    /// Like [`PostgresServer::start_tls`], but a TLS connection authenticates with a client
    /// certificate signed by `ca` whose common name is the user name (`cert` in pg_hba.conf).
    pub fn start_tls_client_auth(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Self::start_ssl(cert, key, Some(ca), "cert")
    }

    fn start_ssl(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: Option<&std::path::Path>,
        method: &str,
    ) -> anyhow::Result<Self> {
        let mut s = Self::init()?;
        let own = |name: &str, from: &std::path::Path| -> anyhow::Result<String> {
            let to = s.dir.path().join(name);
            std::fs::copy(from, &to)?;
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            if is_root() {
                anyhow::ensure!(Command::new("chown").args(["postgres:postgres"]).arg(&to).status()?.success());
            }
            Ok(to.display().to_string())
        };
        let (cert, key) = (own("server.crt", cert)?, own("server.key", key)?);
        let hba = format!(
            "hostssl all all 127.0.0.1/32 {method}\nhostnossl all all 127.0.0.1/32 trust\nlocal all all trust\n"
        );
        std::fs::write(s.dir.path().join("data").join("pg_hba.conf"), hba)?;
        s.extra = format!(" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}");
        if let Some(ca) = ca {
            s.extra.push_str(&format!(" -c ssl_ca_file={}", own("root.crt", ca)?));
        }
        s.start_again()?;
        Ok(s)
    }

    /// Runs one statement as `mutt` over the server's Unix socket.
    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let s = self;
        s.run(&[
            s.bin.join("psql").display().to_string(),
            "-h".into(),
            s.dir.path().display().to_string(),
            "-p".into(),
            s.port.to_string(),
            "-U".into(),
            "mutt".into(),
            "-d".into(),
            "postgres".into(),
            "-c".into(),
            sql.to_owned(),
        ])
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn init() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let s = Self { port, dir, bin: pg_bin()?, running: false, extra: String::new() };
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(s.dir.path()).status()?.success();
            anyhow::ensure!(ok, "chown of the PostgreSQL data directory failed");
        }
        s.run(&[
            s.bin.join("initdb").display().to_string(),
            "-D".into(),
            s.data(),
            "--auth=trust".into(),
            "-U".into(),
            "mutt".into(),
        ])?;
        Ok(s)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, args: &[String]) -> anyhow::Result<()> {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c.args(args);
            c
        } else {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        };
        let out = cmd.output()?;
        anyhow::ensure!(out.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    /// `postgres://mutt@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://mutt@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off{}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        self.run(&[
            self.bin.join("pg_ctl").display().to_string(),
            "-D".into(),
            self.data(),
            "-l".into(),
            self.dir.path().join("pg.log").display().to_string(),
            "-w".into(),
            "-o".into(),
            opts,
            "start".into(),
        ])?;
        self.running = true;
        Ok(())
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.running {
            self.run(&[
                self.bin.join("pg_ctl").display().to_string(),
                "-D".into(),
                self.data(),
                "-m".into(),
                "fast".into(),
                "-w".into(),
                "stop".into(),
            ])?;
            self.running = false;
        }
        Ok(())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.run(&[
                self.bin.join("pg_ctl").display().to_string(),
                "-D".into(),
                self.data(),
                "-m".into(),
                "immediate".into(),
                "stop".into(),
            ]);
        }
    }
}
