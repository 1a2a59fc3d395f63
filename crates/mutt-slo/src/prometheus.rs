//! One instant query against a Prometheus (spec §6.7 step 3): `GET <base>/api/v1/query` with a
//! 5 s timeout; on an error or a non-200 answer, once more after 2 s. The value is
//! `data.result[0].value[1]` when the status is `success`; an empty result or `NaN` (a ratio
//! of two zero rates: no traffic in the window) is no data.

use crate::{REQUEST_TIMEOUT, shown};
use std::time::Duration;

/// The pause before the one retry.
const RETRY_AFTER: Duration = Duration::from_secs(2);

pub async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Option<f64> {
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(RETRY_AFTER).await;
        }
        match once(client, base, promql).await {
            Ok(value) => return value,
            Err(e) => tracing::warn!(error = %e, attempt, "Prometheus query failed"),
        }
    }
    None
}

async fn once(client: &reqwest::Client, base: &str, promql: &str) -> Result<Option<f64>, String> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let with_query =
        reqwest::Url::parse_with_params(&url, [("query", promql)]).map_err(|e| format!("{}: {e}", shown(&url)))?;
    let url = shown(&url);
    let resp = client
        .get(with_query)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("asking {url}: {}", e.without_url()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("reading {url}: {}", e.without_url()))?;
    Ok(value_of(&body))
}

/// `data.result[0].value[1]` of a successful answer, if it is a finite number.
pub fn value_of(body: &serde_json::Value) -> Option<f64> {
    if body["status"] != "success" {
        return None;
    }
    let v = body["data"]["result"].get(0)?["value"].get(1)?.as_str()?.parse::<f64>().ok()?;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_first_result() {
        let ok = json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.998"]}]}});
        assert_eq!(value_of(&ok), Some(0.998));
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(value_of(&empty), None);
        let nan = json!({"status": "success", "data": {"result": [{"value": [1.0, "NaN"]}]}});
        assert_eq!(value_of(&nan), None);
        assert_eq!(value_of(&json!({"status": "error", "error": "bad query"})), None);
    }
}
