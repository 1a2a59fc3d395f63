//! A PostgreSQL server owned by one test (for outage tests): initdb in a temporary directory,
//! `pg_ctl` start/stop, run as the `postgres` user when the tests run as root.

use std::path::PathBuf;
use std::process::Command;

pub struct PostgresServer {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let mut s = Self { port, dir, bin: pg_bin()?, running: false };
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
        s.start_again()?;
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
        let opts =
            format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off", self.port, self.dir.path().display());
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
