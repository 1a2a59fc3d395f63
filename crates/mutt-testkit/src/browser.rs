//! Headless Chromium for the console's browser tests: the Debian `chromium` and
//! `chromium-driver` packages (installed by `scripts/lib/services.sh`), driven over WebDriver
//! with fantoccini.
//!
//! ```ignore
//! let Some(browser) = Browser::start("my_test").await else { return }; // skipped locally
//! browser.login(&base, KEY).await;
//! browser.goto(&format!("{base}/rules")).await;
//! browser.wait_for_text("h1", "Rules").await;
//! browser.screenshot("rules").await; // docs/ui/rules.png
//! browser.stop().await;
//! ```
//!
//! [`Browser::start`] starts chromedriver on a free loopback port in a process group of its
//! own, and Chromium headless with a fresh profile (a temporary directory) and no background
//! networking or component updates (nothing leaves the machine). [`Browser::stop`] (or drop)
//! ends the session and kills that process group by its id. `client` is the fantoccini
//! [`Client`] for anything the helpers here do not cover. Binaries: `MUTT_TEST_CHROMEDRIVER`
//! and `MUTT_TEST_CHROMIUM`, else `chromedriver` and `chromium` on PATH.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the helpers wait for an element or a text.
pub const WAIT: Duration = Duration::from_secs(10);
/// The window of the screenshots (a laptop screen).
pub const WINDOW: (u32, u32) = (1280, 900);

/// A running headless Chromium with its chromedriver.
pub struct Browser {
    pub client: Client,
    driver: Option<Child>,
    _profile: tempfile::TempDir,
}

/// `name` on PATH (or the file `name` if it is a path), if it exists.
fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

fn binaries() -> Option<(PathBuf, PathBuf)> {
    let driver = std::env::var("MUTT_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let chromium = std::env::var("MUTT_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    Some((which(&driver)?, which(&chromium)?))
}

/// Where screenshots go: `docs/ui/` at the workspace root.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ui")
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Kills the process group led by `child` (chromedriver and the Chromium it started).
fn kill_group(child: &mut Child) {
    // Never through the `kill` command: some builds parse `-12345` as `-1`, every process.
    if let Ok(pid) = i32::try_from(child.id())
        && pid > 1
    {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Browser {
    /// Chromium, or `None` after [`crate::skip_or_fail`] when it or chromedriver is missing
    /// (a skip locally, a failure under CI). Panics if they exist but do not start.
    pub async fn start(test: &str) -> Option<Browser> {
        let Some((driver_bin, chromium)) = binaries() else {
            crate::skip_or_fail(test, "chromium or chromedriver is not installed (Debian: chromium, chromium-driver)");
            return None;
        };
        let port = free_port().expect("a free port for chromedriver");
        let mut driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                kill_group(&mut driver);
                panic!("chromedriver did not listen on {url} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        match Self::session(&url, &chromium, profile.path()).await {
            Ok(client) => Some(Browser { client, driver: Some(driver), _profile: profile }),
            Err(e) => {
                kill_group(&mut driver);
                panic!("chromium did not start through chromedriver: {e}");
            }
        }
    }

    async fn session(url: &str, chromium: &Path, profile: &Path) -> Result<Client, String> {
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(caps).connect(url).await.map_err(|e| e.to_string())
    }

    /// Opens `url` (absolute).
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("the current URL").to_string()
    }

    /// Waits (up to [`WAIT`]) until the current URL contains `wanted`: after a click that
    /// submits a form, so that the next look at the page is not at the page before it.
    pub async fn wait_for_url(&self, wanted: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.url().await;
            if url.contains(wanted) {
                return url;
            }
            assert!(Instant::now() < deadline, "the URL did not reach {wanted:?} within {WAIT:?}; it is {url:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to [`WAIT`]) for the element matching `css` and returns it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?} within {WAIT:?}: {e}"))
    }

    /// The text of the element matching `css`. A page that refreshes its live parts replaces
    /// the element between finding it and reading it ("stale element reference"): it is found
    /// again, for up to [`WAIT`].
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(e) if Instant::now() < deadline && e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("text of {css:?}: {e}"),
            }
        }
    }

    /// Waits (up to [`WAIT`]) until the element matching `css` contains `wanted`; its text.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if found.contains(wanted) {
                return found;
            }
            assert!(Instant::now() < deadline, "{css:?} did not show {wanted:?} within {WAIT:?}; it shows {found:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field matching `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap_or_else(|err| panic!("clearing {css:?}: {err}"));
        e.send_keys(text).await.unwrap_or_else(|err| panic!("typing into {css:?}: {err}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("clicking {css:?}: {e}"));
    }

    /// Logs in to the MUTT console at `base` (`http://127.0.0.1:port`) with `key` and waits for
    /// the page after it.
    pub async fn login(&self, base: &str, key: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("#api_key", key).await;
        self.click("form.login-form button[type=submit]").await;
        self.find("header.top").await;
    }

    /// Logs out with the header's button and checks that the console at `base` then asks for
    /// a login again.
    pub async fn logout(&self, base: &str) {
        self.click("header form[action='/logout'] button").await;
        self.find("#api_key").await;
        self.goto(&format!("{base}/")).await;
        self.find("#api_key").await;
        assert!(self.url().await.contains("/login"), "the console asks for a login after logging out");
    }

    /// Saves a PNG of the whole page (the window made as tall as the page, then restored) as
    /// `docs/ui/<name>.png`; its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let (w, h) = self.client.get_window_size().await.unwrap_or((u64::from(WINDOW.0), u64::from(WINDOW.1)));
        let script = "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)";
        let tall = self.client.execute(script, vec![]).await.ok().and_then(|v| v.as_u64()).unwrap_or(h);
        // The window's frame: the page's height plus what the viewport does not show.
        let inner = self.client.execute("return window.innerHeight", vec![]).await.ok().and_then(|v| v.as_u64());
        let frame = inner.map_or(0, |i| h.saturating_sub(i));
        let resized = tall + frame > h;
        if resized {
            let _ = self.client.set_window_size(w as u32, (tall + frame).min(8000) as u32).await;
        }
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        if resized {
            let _ = self.client.set_window_size(w as u32, h as u32).await;
        }
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("docs/ui exists");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Ends the session and stops chromedriver and Chromium.
    pub async fn stop(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        if let Some(mut d) = self.driver.take() {
            kill_group(&mut d);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut d) = self.driver.take() {
            kill_group(&mut d);
        }
    }
}
