//! A logged-in console session over plain HTTP for the page tests (`ui_rules.rs`, `ui_ops.rs`,
//! `ui_hosts.rs`): redirects are not followed (the tests look at them), the session cookie and
//! the CSRF token are sent by hand.

#![allow(dead_code)]

use mutt_testapp::TestApp;
use mutt_testapp::reqwest::{self, StatusCode, header};
use serde_json::Value;
use std::time::Duration;

pub struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
    pub csrf: String,
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

impl Console {
    /// Logs in the way the original's bookmarks do (`?api_key=`), then reads the CSRF token
    /// from a page.
    pub async fn login(app: &TestApp) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r = http.get(format!("{}/rules?api_key={}", app.base_url, app.api_key)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("mutt_session="))
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut c = Self { http, base: app.base_url.clone(), cookie, csrf: String::new() };
        let (status, html) = c.get("/rules").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        c.csrf = html[at..at + html[at..].find('"').unwrap()].to_string();
        c
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let r =
            self.http.get(format!("{}{path}", self.base)).header(header::COOKIE, &self.cookie).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// A form POST with the CSRF token.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = form.to_vec();
        fields.push(("csrf", &self.csrf));
        self.post_without_csrf(path, &fields).await
    }

    pub async fn post_without_csrf(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// A form POST answered with a page (not a redirect): its status and HTML.
    pub async fn post_page(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self.post(path, form).await;
        (r.status(), r.text().await.unwrap())
    }

    /// A form POST with the CSRF token: its status, `Location` (empty without one) and body.
    pub async fn post_answer(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let r = self.post(path, form).await;
        let location = location(&r);
        (r.status(), location, r.text().await.unwrap())
    }

    /// A multipart POST (a file upload) with the CSRF token in the query, as the page's form
    /// sends it: `file` holds `file_text` (named `hosts.csv`), `csv` the text area.
    pub async fn upload(&self, path: &str, file_text: &str, csv: &str) -> reqwest::Response {
        let boundary = "----mutt-test-boundary-7d3f";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hosts.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n{file_text}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"csv\"\r\n\r\n{csv}\r\n--{boundary}--\r\n"
        );
        self.http
            .post(format!("{}{path}?csrf={}", self.base, self.csrf))
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Every POST form of `html` carries `csrf`: a hidden field, or `?csrf=` in a multipart
/// form's action. Returns how many forms there are.
pub fn assert_forms_carry_csrf(html: &str, csrf: &str) -> usize {
    let forms: Vec<&str> =
        html.split("<form method=\"post\"").skip(1).map(|f| &f[..f.find("</form>").unwrap()]).collect();
    for f in &forms {
        let hidden = f.contains(&format!("name=\"csrf\" value=\"{csrf}\""));
        let in_action = f.contains(&format!("?csrf={csrf}\"")) && f.contains("multipart/form-data");
        assert!(hidden || in_action, "a form without the CSRF token: {f}");
    }
    forms.len()
}

/// The text of the error shown next to `field` (`<p class="field-error" id="<field>-error">`).
pub fn field_error(html: &str, field: &str) -> Option<String> {
    let marker = format!("id=\"{field}-error\"");
    let at = html.find(&marker)?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest.find("</")?;
    Some(unescape(&rest[start..end]))
}

/// The few entities askama writes.
pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The config-audit rows of `table`, newest first, through the API.
pub async fn audit_rows(app: &TestApp, table: &str) -> Vec<Value> {
    let r = app.client.get(&format!("/api/v2/config-audit?table_name={table}&limit=200")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["changes"].as_array().expect("changes").clone()
}

/// Listens for the alerters' reload notice (Redis: pub/sub; embedded: the watcher's
/// one-second poll of the rules version).
pub struct Notices {
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
    _stop: tokio_util::sync::DropGuard,
}

impl Notices {
    /// Starts listening; the watcher subscribes in the background, so this waits a moment
    /// and drops anything heard meanwhile.
    pub async fn listen(app: &TestApp) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let watcher = app.backend.coordination.clone();
        let token = stop.clone();
        tokio::spawn(async move {
            watcher.watch_rules_changed(Box::new(move || _ = tx.send(())), token).await;
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        while rx.try_recv().is_ok() {}
        Self { rx, _stop: stop.drop_guard() }
    }

    /// Whether a notice comes within `limit`.
    pub async fn heard(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.rx.recv()).await.is_ok_and(|m| m.is_some())
    }

    /// How many notices come within `limit`.
    pub async fn count(&mut self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        let mut n = 0;
        while let Ok(Some(())) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            n += 1;
        }
        n
    }
}
