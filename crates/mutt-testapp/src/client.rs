//! An HTTP client for a MUTT endpoint (the web role, the ingestor) that sends the API key and
//! reads every reply as JSON when it is JSON.

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const API_KEY_HEADER: &str = "X-API-KEY";

/// A client bound to one base URL and (optionally) one API key.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
    key: Option<String>,
}

impl ApiClient {
    /// `base_url` like `http://127.0.0.1:4321` (no trailing slash); `key` sent as `X-API-KEY`.
    pub fn new(base_url: impl Into<String>, key: Option<&str>) -> Self {
        // No proxy: tests talk to 127.0.0.1 whatever the environment says.
        let http = reqwest::Client::builder().no_proxy().build().expect("build the HTTP client");
        Self { http, base_url: base_url.into(), key: key.map(str::to_owned) }
    }

    /// The same client with another key (`None`: no key header at all).
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self { key: key.map(str::to_owned), ..self.clone() }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request to `path` carrying the key, for what the helpers below do not cover.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match &self.key {
            Some(k) => req.header(API_KEY_HEADER, k),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(self.request(Method::GET, path)).await
    }

    /// POSTs `body` as JSON.
    pub async fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Reply {
        Reply::from(self.request(Method::POST, path).json(body)).await
    }

    /// POSTs raw bytes with the given Content-Type (`None`: no Content-Type header).
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Reply {
        let mut req = self.request(Method::POST, path).body(body);
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        Reply::from(req).await
    }
}

/// A reply: status, headers, the body as text and as JSON (`Value::Null` when not JSON).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub async fn from(req: RequestBuilder) -> Self {
        let resp = req.send().await.expect("send the request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("read the reply body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self { status, headers, text, body }
    }

    /// The body as `T`; panics with the body when it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("reply ({}) is not the expected JSON: {e}: {}", self.status, self.text))
    }

    /// Whether the reply says it is JSON.
    pub fn is_json(&self) -> bool {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"))
    }
}
