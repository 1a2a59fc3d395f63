//! The console's login, session and CSRF over plain HTTP (no browser): the cookie's flags,
//! pages behind the session, a POST without the CSRF token refused, `?api_key=` bookmarks
//! redirected to a clean URL, logout, the vendored assets.

use mutt_testapp::reqwest::{self, StatusCode, header};
use mutt_testapp::{BackendKind, TestApp, both_backends, spawn_app};

/// A client that does not follow redirects (the tests look at them) and keeps no cookies
/// (the tests send them).
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `pairs` as an urlencoded form body.
fn form(builder: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
}

fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// `name=value` of the `Set-Cookie` for `name`.
fn cookie_pair(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(resp)
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The value of the hidden field `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Logs in through the form; (session cookie pair, the Set-Cookie line).
async fn login(app: &TestApp, key: &str) -> reqwest::Response {
    let http = http();
    let page = http.get(format!("{}/login", app.base_url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let login_cookie = cookie_pair(&page, "mutt_login").expect("the login form sets its CSRF cookie");
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    let post = http.post(format!("{}/login", app.base_url)).header(header::COOKIE, login_cookie);
    form(post, &[("api_key", key), ("csrf", &csrf), ("next", "/")]).send().await.unwrap()
}

async fn login_sets_a_strict_http_only_cookie_and_pages_need_it(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let http = http();
    // Without a session: to the login page, remembering where the operator was going.
    let r = http.get(format!("{}/", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2F");
    // An htmx poll without a session sends the whole page to the login.
    let r = http.get(format!("{}/overview/live", app.base_url)).header("HX-Request", "true").send().await.unwrap();
    assert!(r.headers().get("hx-redirect").is_some_and(|v| v.to_str().unwrap().starts_with("/login")));

    let r = login(&app, &app.api_key).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/");
    let line = set_cookies(&r).into_iter().find(|c| c.starts_with("mutt_session=")).expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(flag), "{line} lacks {flag}");
    }
    assert!(!line.contains("Secure"), "plain HTTP: no Secure flag ({line})");
    assert!(!line.contains(&app.api_key), "the cookie is not the key");
    let session = cookie_pair(&r, "mutt_session").unwrap();

    let page = http.get(format!("{}/", app.base_url)).header(header::COOKIE, &session).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>"), "{html}");
    assert!(!html.contains(&app.api_key), "the page does not show the key");
    assert!(html.contains("key: default"), "the header names the key");
}

async fn wrong_key_is_refused_with_a_message(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let r = login(&app, "not-the-key").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_pair(&r, "mutt_session").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("That API key is not accepted."), "{html}");
    assert!(!html.contains("not-the-key"), "the wrong key is not echoed");

    // A login POST without the form's CSRF cookie (from another site) is refused too.
    let r =
        form(http().post(format!("{}/login", app.base_url)), &[("api_key", app.api_key.as_str()), ("csrf", "forged")])
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(cookie_pair(&r, "mutt_session").is_none());
}

async fn a_post_without_the_csrf_token_is_refused(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let session = cookie_pair(&login(&app, &app.api_key).await, "mutt_session").unwrap();
    let http = http();
    let page = http.get(format!("{}/", app.base_url)).header(header::COOKIE, &session).send().await.unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");

    for token in [None, Some("0123456789abcdef")] {
        let mut pairs = vec![];
        if let Some(t) = token {
            pairs.push(("csrf", t));
        }
        let post = http.post(format!("{}/logout", app.base_url)).header(header::COOKIE, &session);
        let r = form(post, &pairs).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "token {token:?}");
    }
    // Still logged in.
    let r = http.get(format!("{}/", app.base_url)).header(header::COOKIE, &session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The header htmx sends works as well as the field; logout ends the session.
    let r = http
        .post(format!("{}/logout", app.base_url))
        .header(header::COOKIE, &session)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("mutt_session=;") && c.contains("Max-Age=0")));
    let r = http.get(format!("{}/", app.base_url)).header(header::COOKIE, &session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the old cookie no longer works");
    assert!(location(&r).starts_with("/login"));
}

async fn api_key_bookmarks_redirect_to_a_clean_url(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let http = http();
    let url = format!("{}/?api_key={}&tab=rates", app.base_url, app.api_key);
    let r = http.get(url).header("X-Forwarded-Proto", "https").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/?tab=rates");
    let line = set_cookies(&r).into_iter().find(|c| c.starts_with("mutt_session=")).expect("a session cookie");
    assert!(line.contains("Secure"), "over HTTPS the cookie is Secure: {line}");
    let session = cookie_pair(&r, "mutt_session").unwrap();
    let r = http.get(format!("{}/?tab=rates", app.base_url)).header(header::COOKIE, session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A wrong key: the login page with the error, no session, and the key not echoed.
    let r = http.get(format!("{}/?api_key=wrong-bookmark", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_pair(&r, "mutt_session").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("That API key is not accepted.") && !html.contains("wrong-bookmark"));
}

async fn assets_are_vendored_and_cached(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let http = http();
    let html = http.get(format!("{}/login", app.base_url)).send().await.unwrap().text().await.unwrap();
    let css = html.split("href=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(css.starts_with("/ui/assets/mutt.css?v="), "{css}");
    let r = http.get(format!("{}{css}", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    assert!(r.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
    let r = http.get(format!("{}/ui/assets/htmx.min.js", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("htmx"));
    let r = http.get(format!("{}/ui/assets/nothing.js", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

both_backends!(
    login_sets_a_strict_http_only_cookie_and_pages_need_it,
    wrong_key_is_refused_with_a_message,
    a_post_without_the_csrf_token_is_refused,
    api_key_bookmarks_redirect_to_a_clean_url,
    assets_are_vendored_and_cached,
);

/// The overview's live part (what htmx polls) shows the ingest count, the queue depth and the
/// newest dead letter with its reason.
async fn overview_shows_counts_depths_and_dead_letters(kind: BackendKind) {
    use mutt_queue::dlq::Dlq;
    let app = spawn_app(kind).await;
    let session = cookie_pair(&login(&app, &app.api_key).await, "mutt_session").unwrap();
    let events: Vec<Vec<u8>> = (0..3).map(|n| format!(r#"{{"hostname":"r{n}","message":"x"}}"#).into_bytes()).collect();
    app.backend.queue.push_ingest(&events, chrono::Utc::now()).await.unwrap();
    let dead = br#"{"hostname":"edge-7","message":"m","_dlq_reason":"poison_message","_dlq_error":"could not parse"}"#;
    app.backend.queue.dead_letters().dlq_push(Dlq::Alerter, &[dead.to_vec()]).await.unwrap();

    let r =
        http().get(format!("{}/overview/live", app.base_url)).header(header::COOKIE, &session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(!html.contains("<html"), "a fragment, not a page");
    assert!(html.contains(r#"<span id="count-1m">3</span>"#), "{html}");
    assert!(html.contains(r#"ingest_queue">3<"#), "the ingest queue's depth: {html}");
    assert!(html.contains("edge-7") && html.contains("could not parse"), "{html}");
    assert!(html.contains(r#"<a href="/dlq/alerter">alerter</a>"#), "links to the DLQ's page: {html}");
}

both_backends!(overview_shows_counts_depths_and_dead_letters);

/// A session ends when its key is rotated away (WEBUI_API_KEY from Vault): the next page goes
/// to the login; a session of a key still configured goes on.
#[tokio::test]
async fn a_session_ends_when_its_key_is_rotated_away() {
    use mutt_core::Secret;
    let site = mutt_testapp::Site::fresh(BackendKind::Embedded).await;
    let backend = site.open().await;
    let keys = vec![Secret::new("ops:old-key").into(), Secret::new("ci:ci-key").into()];
    let config = mutt_web::WebConfig { api_keys: keys, ..Default::default() };
    let web = mutt_testapp::serve_web(&backend, config, Default::default()).await;
    let (keys, base) = (&web.keys, web.base_url.clone());
    let http = http();
    let session_of = |key: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http.get(format!("{base}/?api_key={key}")).send().await.unwrap();
            cookie_pair(&r, "mutt_session").expect("a session")
        }
    };
    let (old, ci) = (session_of("old-key").await, session_of("ci-key").await);
    let status = |cookie: String| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}/")).header(header::COOKIE, cookie).send().await.unwrap().status() }
    };
    assert_eq!(status(old.clone()).await, StatusCode::OK);

    assert!(keys.set(vec![Secret::new("ops:new-key").into(), Secret::new("ci:ci-key").into()]));
    assert_eq!(status(old).await, StatusCode::SEE_OTHER, "the old key's session has ended");
    assert_eq!(status(ci).await, StatusCode::OK, "a key still configured keeps its session");
}
