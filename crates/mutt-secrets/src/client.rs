//! The Vault HTTP calls MUTT makes, written against Vault's documented API with reqwest rather
//! than through vaultrs: four endpoints (AppRole login, KV v2 read, token lookup-self and
//! renew-self) do not justify another dependency tree, and this keeps one HTTP and TLS stack
//! (reqwest over rustls, like the forwarder) in the binary.

use crate::VaultError;
use mutt_core::Secret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A Vault token and how long it was granted for.
#[derive(Clone, Debug)]
pub struct Token {
    pub value: Secret,
    /// The lease Vault granted at login or the last renewal.
    pub lease: Duration,
    pub renewable: bool,
}

/// A client for one Vault server (`VAULT_ADDR`).
#[derive(Clone, Debug)]
pub struct VaultClient {
    http: reqwest::Client,
    addr: String,
}

/// `<mount>/data/<path>`: the KV v2 API path of a secret. A path written with its mount in front
/// (`secret/mutt/prod`, the original's default form) loses it, so `secret/mutt/prod` and
/// `mutt/prod` both read `secret/data/mutt/prod` (the original appended the whole path after
/// `secret/data/`, reading `secret/data/secret/mutt`: spec §11.3).
pub fn kv2_data_path(mount: &str, path: &str) -> String {
    let mount = mount.trim_matches('/');
    let path = path.trim_matches('/');
    let path = path.strip_prefix(mount).and_then(|p| p.strip_prefix('/')).unwrap_or(path);
    format!("{mount}/data/{path}")
}

impl VaultClient {
    /// `ca_file` (`VAULT_CACERT`): the only CAs trusted for Vault's certificate; without it the
    /// system's.
    pub fn new(addr: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<Self, VaultError> {
        let mut builder =
            reqwest::Client::builder().timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(5)));
        if let Some(path) = ca_file {
            let pem =
                std::fs::read(path).map_err(|e| VaultError::Config(format!("VAULT_CACERT {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| VaultError::Config(format!("VAULT_CACERT {}: {e}", path.display())))?;
            // An empty list would trust nothing and fail every call as an unknown issuer.
            if certs.is_empty() {
                return Err(VaultError::Config(format!("VAULT_CACERT {}: no PEM certificate in it", path.display())));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| VaultError::Config(format!("HTTP client: {e}")))?;
        Ok(Self { http, addr: addr.trim_end_matches('/').to_owned() })
    }

    fn url(&self, api_path: &str) -> String {
        format!("{}/v1/{api_path}", self.addr)
    }

    /// Sends a request and returns the JSON body of a 2xx answer.
    async fn call(&self, what: &'static str, req: reqwest::RequestBuilder, path: &str) -> Result<Value, VaultError> {
        let resp =
            req.send().await.map_err(|e| VaultError::Unreachable { what, reason: with_tls_hint(error_chain(&e)) })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        match status.as_u16() {
            200..=299 => Ok(body),
            403 => Err(VaultError::Denied { what }),
            404 => Err(VaultError::NotFound { what, path: path.to_owned() }),
            code => {
                // Vault's `errors` are messages ("invalid role or secret ID"), never values.
                let errors = body["errors"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
                Err(VaultError::Status { what, status: code, errors: errors.unwrap_or_default() })
            }
        }
    }

    /// `POST /v1/auth/approle/login`.
    pub async fn login_approle(&self, role_id: &str, secret_id: &Secret) -> Result<Token, VaultError> {
        let what = "AppRole login";
        let body = serde_json::json!({ "role_id": role_id, "secret_id": secret_id.expose() });
        let path = "auth/approle/login";
        let answer = self.call(what, self.http.post(self.url(path)).json(&body), path).await?;
        token_from(what, &answer)
    }

    /// `POST /v1/auth/token/renew-self`.
    pub async fn renew_self(&self, token: &Secret) -> Result<Token, VaultError> {
        let what = "token renewal";
        let path = "auth/token/renew-self";
        let req = self.http.post(self.url(path)).header("X-Vault-Token", token.expose()).json(&serde_json::json!({}));
        token_from(what, &self.call(what, req, path).await?)
    }

    /// `GET /v1/auth/token/lookup-self`: the token's remaining time to live.
    pub async fn lookup_self(&self, token: &Secret) -> Result<Duration, VaultError> {
        let what = "token lookup";
        let path = "auth/token/lookup-self";
        let answer =
            self.call(what, self.http.get(self.url(path)).header("X-Vault-Token", token.expose()), path).await?;
        let ttl = answer["data"]["ttl"]
            .as_u64()
            .ok_or_else(|| VaultError::Protocol { what, reason: "no data.ttl".into() })?;
        Ok(Duration::from_secs(ttl))
    }

    /// `GET /v1/<mount>/data/<path>`: the newest version of a KV v2 secret, every value as text.
    pub async fn kv2_read(
        &self,
        token: &Secret,
        mount: &str,
        path: &str,
    ) -> Result<BTreeMap<String, Secret>, VaultError> {
        let what = "secret read";
        let api_path = kv2_data_path(mount, path);
        let req = self.http.get(self.url(&api_path)).header("X-Vault-Token", token.expose());
        let answer = self.call(what, req, &api_path).await?;
        let data = answer["data"]["data"]
            .as_object()
            .ok_or_else(|| VaultError::Protocol { what, reason: format!("no data.data object at {api_path}") })?;
        Ok(data
            .iter()
            .filter_map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((k.clone(), Secret::new(text)))
            })
            .collect())
    }
}

fn token_from(what: &'static str, answer: &Value) -> Result<Token, VaultError> {
    let auth = &answer["auth"];
    let value = auth["client_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| VaultError::Protocol { what, reason: "no auth.client_token".into() })?;
    Ok(Token {
        value: Secret::new(value),
        lease: Duration::from_secs(auth["lease_duration"].as_u64().unwrap_or(0)),
        renewable: auth["renewable"].as_bool().unwrap_or(false),
    })
}

/// The error with its causes (reqwest's top level says little: "error sending request").
/// An untrusted certificate is the usual TLS failure: name the setting that decides trust.
fn with_tls_hint(reason: String) -> String {
    if reason.contains("invalid peer certificate") {
        format!(
            "{reason} (Vault's certificate is not signed by a CA in VAULT_CACERT, or by a system CA when \
             VAULT_CACERT is unset)"
        )
    } else {
        reason
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::kv2_data_path;

    #[test]
    fn mount_aware_paths() {
        assert_eq!(kv2_data_path("secret", "secret/mutt"), "secret/data/mutt");
        assert_eq!(kv2_data_path("secret", "mutt"), "secret/data/mutt");
        assert_eq!(kv2_data_path("secret", "secret/mutt/prod"), "secret/data/mutt/prod");
        assert_eq!(kv2_data_path("secret/", "/mutt/prod/"), "secret/data/mutt/prod");
        assert_eq!(kv2_data_path("kv", "secretive/x"), "kv/data/secretive/x");
        assert_eq!(kv2_data_path("secret", "secretive/x"), "secret/data/secretive/x");
    }
}
