//! A `redis-server` process owned by one test (for restart tests).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    aof: bool,
    /// Extra command-line arguments (TLS, replication, cluster mode, …).
    extra: Vec<String>,
    /// Whether the server answers plain TCP on `port` (false when only TLS is on).
    plain: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port in a temporary directory; `aof` turns on
    /// the append-only file with `appendfsync everysec`.
    pub fn start(aof: bool) -> anyhow::Result<Self> {
        Self::start_with(aof, &[])
    }

    /// Starts with extra `redis-server` arguments; `{dir}` in them becomes the data directory.
    pub fn start_with(aof: bool, extra: &[&str]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let d = dir.path().display().to_string();
        let extra: Vec<String> = extra.iter().map(|a| a.replace("{dir}", &d)).collect();
        let mut s = Self { port, dir, aof, extra, plain: true, child: None };
        s.spawn()?;
        Ok(s)
    }

    /// Starts a TLS-only server (certificates from `tls`); returns it and its `rediss://` URL.
    pub fn start_tls(tls: &TestCertificates) -> anyhow::Result<Self> {
        Self::start_tls_with(tls, &tls.cert, &tls.key)
    }

    /// A TLS-only server presenting `cert`/`key` (e.g. one of [`TestCertificates::issue`] for
    /// another name) with `tls`'s CA.
    pub fn start_tls_with(
        tls: &TestCertificates,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let tls_port = free_port()?;
        let dir = tempfile::tempdir()?;
        let extra = vec![
            "--tls-port".to_string(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--tls-ca-cert-file".into(),
            tls.ca.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        // Port 0 turns plain TCP off; the readiness probe then uses the TLS port.
        let mut s = Self { port: tls_port, dir, aof: false, extra, plain: false, child: None };
        s.spawn()?;
        Ok(s)
    }

    /// Starts a Sentinel that monitors `master` (as `name`), with short failure timeouts.
    pub fn start_sentinel(name: &str, master_port: u16) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\nsentinel failover-timeout {name} 3000\n",
                dir.path().display()
            ),
        )?;
        let mut child = Command::new(redis_binary())
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_port(port).inspect_err(|_| {
            let _ = child.kill();
        })?;
        Ok(Self { port, dir, aof: false, extra: Vec::new(), plain: true, child: Some(child) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.plain { "redis" } else { "rediss" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory (the AOF lives under it, in `appendonlydir`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(redis_binary());
        cmd.arg("--port")
            .arg(if self.plain { self.port.to_string() } else { "0".into() })
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg(if self.aof { "yes" } else { "no" })
            .arg("--appendfsync")
            .arg("everysec")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn()?);
        wait_port(self.port)
    }

    /// Stops the server gracefully (SIGTERM: the AOF is flushed), waiting for it to exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn redis_binary() -> PathBuf {
    std::env::var_os("MUTT_REDIS_SERVER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("redis-server"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("redis-server did not start on port {port}")
}

/// A throwaway CA and a server certificate for 127.0.0.1, made with the `openssl` command.
pub struct TestCertificates {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    ca_key: PathBuf,
}

impl TestCertificates {
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let p = |n: &str| dir.path().join(n);
        let run = |args: &[&str]| -> anyhow::Result<()> {
            let out = Command::new("openssl").args(args).output()?;
            anyhow::ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            Ok(())
        };
        let (ca, ca_key, cert, key, csr, ext) =
            (p("ca.pem"), p("ca.key"), p("server.pem"), p("server.key"), p("server.csr"), p("ext.cnf"));
        let s = |x: &PathBuf| x.display().to_string();
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mutt-test-ca",
            "-keyout",
            &s(&ca_key),
            "-out",
            &s(&ca),
        ])?;
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
        ])?;
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")?;
        run(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&ca),
            "-CAkey",
            &s(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &s(&ext),
            "-out",
            &s(&cert),
        ])?;
        Ok(Self { _dir: dir, ca, cert, key, ca_key })
    }

    /// Another certificate and key signed by the same CA, for `subject_alt_name` (e.g.
    /// `DNS:wrong.example`, for tests of host-name checks). Files `<stem>.pem`, `<stem>.key`.
    pub fn issue(&self, stem: &str, subject_alt_name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.sign(stem, "/CN=mutt-test", &format!("subjectAltName={subject_alt_name}"))
    }

    /// A client certificate and key for `common_name` (PostgreSQL's `cert` authentication
    /// takes the user name from it), signed by the same CA.
    pub fn issue_client(&self, stem: &str, common_name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.sign(stem, &format!("/CN={common_name}"), "extendedKeyUsage=clientAuth")
    }

    fn sign(&self, stem: &str, subject: &str, extension: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let dir = self.ca.parent().ok_or_else(|| anyhow::anyhow!("CA file has no directory"))?;
        let p = |ext: &str| dir.join(format!("{stem}.{ext}"));
        let (cert, key, csr, ext) = (p("pem"), p("key"), p("csr"), p("cnf"));
        std::fs::write(&ext, format!("{extension}\n"))?;
        let s = |x: &PathBuf| x.display().to_string();
        for args in [
            vec!["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &s(&key), "-out", &s(&csr)],
            vec![
                "x509",
                "-req",
                "-in",
                &s(&csr),
                "-CA",
                &s(&self.ca),
                "-CAkey",
                &s(&self.ca_key),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &s(&ext),
                "-out",
                &s(&cert),
            ],
        ] {
            let out = Command::new("openssl").args(&args).output()?;
            anyhow::ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok((cert, key))
    }
}
