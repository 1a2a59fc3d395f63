//! The forwarder against real Redis and the test webhook receiver, one batch at a time.

use mutt_core::{Alert, PodName};
use mutt_forwarder::{
    Destination, ForwardOutcome, Forwarder, ForwarderConfig, ForwarderMetrics, LamAuth, OutputFormat,
};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{BreakerState, ConsumerConfig, Coordination, Queue, QueueId, WorkerRole};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    queue: RedisQueue,
    receiver: WebhookReceiver,
}

async fn setup() -> Setup {
    let queue = RedisQueue::connect(&RedisConfig::single(
        mutt_testkit::redis_url(),
        KeySpace::with_prefix(&mutt_testkit::unique_prefix()),
    ))
    .await
    .unwrap();
    Setup { queue, receiver: WebhookReceiver::start().await }
}

fn alert(n: usize, severity: Option<u8>) -> Alert {
    let mut raw = json!({"hostname": format!("h{n}"), "message": format!("CRITICAL {n}")});
    if let Some(s) = severity {
        raw["syslog_severity"] = json!(s);
    }
    Alert {
        hostname: format!("h{n}"),
        team_assignment: "NetOps".into(),
        severity: "Warning".into(),
        message_body: format!("CRITICAL {n}"),
        raw_json: raw,
        correlation_id: "c".into(),
        event_id: uuid::Uuid::now_v7().to_string(),
        rule_id: Some(1),
        handling: Some("Page_and_ticket".into()),
    }
}

impl Setup {
    fn config(&self, format: OutputFormat) -> ForwarderConfig {
        ForwarderConfig {
            destination: Destination::Webhook(self.receiver.url()),
            api_key: Some(mutt_core::Secret::new("moog-key")),
            format,
            lam_auth: LamAuth::Token(mutt_core::Secret::new("moog-key")),
            timeout: Duration::from_millis(500),
            block_timeout: Duration::from_millis(100),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(60),
            rate_limit: None,
            breaker: None,
            ..ForwarderConfig::default()
        }
    }

    async fn forwarder(&self, config: ForwarderConfig) -> Forwarder {
        self.forwarder_with_metrics(config).await.0
    }

    async fn forwarder_with_metrics(&self, config: ForwarderConfig) -> (Forwarder, ForwarderMetrics) {
        let cc = mutt_testapp::fixtures::consumer(WorkerRole::Forwarder, "f");
        let metrics = ForwarderMetrics::register(&mutt_service::Metrics::new());
        let f =
            Forwarder::start(Arc::new(self.queue.clone()), Arc::new(self.queue.clone()), cc, config, metrics.clone())
                .await
                .unwrap();
        (f, metrics)
    }

    async fn push(&self, alerts: &[Alert]) {
        let raw: Vec<Vec<u8>> = alerts.iter().map(|a| a.to_json().into_bytes()).collect();
        self.queue.push(QueueId::Alert, &raw).await.unwrap();
    }

    async fn dlq(&self) -> Vec<Value> {
        let mut c = self.queue.connection();
        let items: Vec<Vec<u8>> =
            redis::cmd("LRANGE").arg(&self.queue.keys().moog_dlq).arg(0).arg(-1).query_async(&mut c).await.unwrap();
        items.iter().rev().map(|b| serde_json::from_slice(b).unwrap()).collect()
    }

    /// Delayed retries with their due time in ms from now.
    async fn delayed(&self) -> Vec<(Value, i64)> {
        let mut c = self.queue.connection();
        let items: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
            .arg(self.queue.keys().delayed(QueueId::Alert))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut c)
            .await
            .unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        items.iter().map(|(b, score)| (serde_json::from_slice(b).unwrap(), *score as i64 - now)).collect()
    }
}

async fn one_batch(f: &mut Forwarder) -> ForwardOutcome {
    f.process_one_batch().await.unwrap()
}

#[tokio::test]
async fn outcome_table() {
    for (mode, want) in [
        (ReceiverMode::Succeed, "delivered"),
        (ReceiverMode::Status(201), "delivered"),
        (ReceiverMode::Status(202), "delivered"),
        (ReceiverMode::Status(204), "delivered"),
        (ReceiverMode::Status(408), "retried"),
        (ReceiverMode::Status(429), "retried"),
        (ReceiverMode::Status(500), "retried"),
        (ReceiverMode::Status(503), "retried"),
        (ReceiverMode::Hang, "retried"),
        (ReceiverMode::Status(400), "dead"),
        (ReceiverMode::Status(404), "dead"),
        (ReceiverMode::Status(413), "dead"),
        (ReceiverMode::Status(422), "dead"),
    ] {
        let s = setup().await;
        s.receiver.set_mode(mode.clone());
        let mut f = s.forwarder(s.config(OutputFormat::Legacy)).await;
        s.push(&[alert(1, Some(3))]).await;
        let out = one_batch(&mut f).await;
        let ForwardOutcome::Processed { delivered, retried, dead_lettered, .. } = out else {
            panic!("{mode:?}: {out:?}")
        };
        let got = match (delivered, retried, dead_lettered) {
            (1, 0, 0) => "delivered",
            (0, 1, 0) => "retried",
            (0, 0, 1) => "dead",
            other => panic!("{mode:?}: {other:?}"),
        };
        assert_eq!(got, want, "{mode:?}");
        match want {
            "retried" => {
                let d = s.delayed().await;
                assert_eq!(d.len(), 1);
                assert_eq!(d[0].0["_moog_retry_count"], 1, "{mode:?}");
            }
            "dead" => {
                let dlq = s.dlq().await;
                let ReceiverMode::Status(code) = mode else { unreachable!() };
                assert_eq!(dlq[0]["_dlq_reason"], "rejected_by_receiver");
                let err = dlq[0]["_dlq_error"].as_str().unwrap();
                assert!(
                    err.starts_with(&format!("HTTP {code}: ")) && err.contains(&format!("told to answer {code}")),
                    "{err}"
                );
            }
            _ => assert!(s.delayed().await.is_empty() && s.dlq().await.is_empty()),
        }
    }
}

#[tokio::test]
async fn connection_refused_is_retried() {
    let s = setup().await;
    let mut cfg = s.config(OutputFormat::Legacy);
    cfg.destination = Destination::Webhook("http://127.0.0.1:1/events".into());
    let mut f = s.forwarder(cfg).await;
    s.push(&[alert(1, None)]).await;
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { retried: 1, .. }));
    let d = s.delayed().await;
    assert!(d[0].0.get("api_key").is_none());
}

#[tokio::test]
async fn retry_after_is_honoured_and_backoff_is_jittered() {
    let s = setup().await;
    s.receiver.set_mode(ReceiverMode::RateLimit { retry_after_secs: 7 });
    let mut f = s.forwarder(s.config(OutputFormat::Legacy)).await;
    s.push(&[alert(1, None)]).await;
    one_batch(&mut f).await;
    let due = s.delayed().await[0].1;
    assert!((6_000..=7_500).contains(&due), "due in {due} ms");
    // Without Retry-After: full jitter within the first backoff step (base 30 s in this setup).
    s.receiver.set_mode(ReceiverMode::Status(500));
    s.push(&[alert(2, None)]).await;
    one_batch(&mut f).await;
    let d = s.delayed().await;
    let other = d.iter().find(|(v, _)| v["hostname"] == "h2").unwrap().1;
    assert!((-100..=30_100).contains(&other), "{other}");
}

#[tokio::test]
async fn retries_exhausted_go_to_the_dlq() {
    let s = setup().await;
    s.receiver.set_mode(ReceiverMode::Status(502));
    let mut f = s.forwarder(s.config(OutputFormat::Legacy)).await;
    let mut v: Value = serde_json::from_str(&alert(1, None).to_json()).unwrap();
    v["_moog_retry_count"] = json!(5);
    s.queue.push(QueueId::Alert, &[serde_json::to_vec(&v).unwrap()]).await.unwrap();
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { dead_lettered: 1, .. }));
    let dlq = s.dlq().await;
    assert_eq!(dlq[0]["_dlq_reason"], "retries_exhausted");
    assert!(dlq[0]["_dlq_error"].as_str().unwrap().contains("HTTP 502"));
}

#[tokio::test]
async fn rest_lam_batches_with_moog_fields_and_numeric_severities() {
    let s = setup().await;
    let mut f = s.forwarder(s.config(OutputFormat::MoogRestLam)).await;
    s.push(&[alert(1, Some(2)), alert(2, Some(3)), alert(3, Some(4)), alert(4, None)]).await;
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { delivered: 4, .. }));
    let reqs = s.receiver.accepted();
    assert_eq!(reqs.len(), 1, "one request for the batch");
    let body = &reqs[0].body;
    assert_eq!(body["auth_token"], "moog-key");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    for e in events {
        for f in [
            "signature",
            "source_id",
            "external_id",
            "manager",
            "source",
            "class",
            "agent_location",
            "type",
            "severity",
            "description",
            "agent_time",
            "custom_info",
        ] {
            assert!(e.get(f).is_some(), "missing {f} in {e}");
        }
        assert!(e["severity"].as_u64().unwrap() <= 5);
        assert!(uuid::Uuid::parse_str(e["external_id"].as_str().unwrap()).is_ok());
    }
    let sev: Vec<u64> = events.iter().map(|e| e["severity"].as_u64().unwrap()).collect();
    assert_eq!(sev, vec![5, 4, 2, 2], "crit→critical, err→major, warning→warning, none→default");
}

/// As after a crash between the POST and the ack: the alert is delivered and recorded, and
/// comes back from the processing list of a forwarder that died holding it. (A lease knows its
/// redeliveries, so the alert must really come back that way: pushing it again as a new
/// message would be a first delivery, which is not looked up.)
#[tokio::test]
async fn a_redelivered_alert_is_not_sent_again() {
    let s = setup().await;
    let mut f = s.forwarder(s.config(OutputFormat::Legacy)).await;
    let a = alert(1, None);
    s.push(std::slice::from_ref(&a)).await;
    one_batch(&mut f).await;
    s.push(&[a]).await;
    let pod = PodName::parse("dies-holding-it").unwrap();
    let mut dying = s.queue.consumer(ConsumerConfig::new(WorkerRole::Forwarder, pod.clone())).await.unwrap();
    assert_eq!(dying.lease(10, Duration::from_millis(200)).await.unwrap().unwrap().len(), 1);
    drop(dying);
    // Its replacement under the same pod name hands the alert back at start.
    let _replacement = s.queue.consumer(ConsumerConfig::new(WorkerRole::Forwarder, pod)).await.unwrap();
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { duplicates: 1, delivered: 0, .. }));
    assert_eq!(s.receiver.requests().len(), 1);
}

#[tokio::test]
async fn two_copies_of_one_alert_in_a_batch_go_out_once() {
    // Queued twice before either was delivered (an upstream retry): the delivered ids know
    // nothing yet, so the batch itself must drop the second copy.
    let s = setup().await;
    let mut f = s.forwarder(s.config(OutputFormat::Legacy)).await;
    let a = alert(1, None);
    s.push(&[a.clone(), alert(2, None), a]).await;
    let out = one_batch(&mut f).await;
    assert!(matches!(out, ForwardOutcome::Processed { delivered: 2, duplicates: 1, .. }), "{out:?}");
    assert_eq!(s.receiver.requests().len(), 2, "one request per distinct alert (legacy format)");
    assert_eq!(s.queue.depth(QueueId::Alert).await.unwrap(), 0);
}

#[tokio::test]
async fn breaker_opens_probes_once_and_closes() {
    let s = setup().await;
    s.receiver.set_mode(ReceiverMode::Status(500));
    let mut cfg = s.config(OutputFormat::Legacy);
    cfg.breaker = Some((3, Duration::from_secs(1)));
    cfg.batch_size = 1;
    let mut f = s.forwarder(cfg).await;
    s.push(&[alert(1, None), alert(2, None), alert(3, None)]).await;
    for _ in 0..3 {
        assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { retried: 1, .. }));
    }
    assert_eq!(s.queue.breaker_state("moogsoft").await.unwrap().0, BreakerState::Open);
    // Open: nothing is sent, nothing burns a retry.
    s.receiver.set_mode(ReceiverMode::Succeed);
    s.push(&[alert(4, None), alert(5, None)]).await;
    let sent_before = s.receiver.requests().len();
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Paused(_)));
    assert_eq!(s.receiver.requests().len(), sent_before, "nothing sent while open");
    assert_eq!(s.queue.depth(QueueId::Alert).await.unwrap(), 2, "put back, not dropped");
    // After the open period: one probe, which succeeds and closes the breaker.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut cfg = s.config(OutputFormat::Legacy);
    cfg.breaker = Some((3, Duration::from_secs(1)));
    cfg.batch_size = 10;
    let mut f = s.forwarder(cfg).await;
    // (Failed alerts whose jittered retry is already due may be back in the queue too.)
    let out = one_batch(&mut f).await;
    assert!(
        matches!(out, ForwardOutcome::Processed { delivered: 1, put_back, .. } if put_back >= 1),
        "a single probe: {out:?}"
    );
    assert_eq!(s.receiver.requests().len(), sent_before + 1);
    assert_eq!(s.queue.breaker_state("moogsoft").await.unwrap().0, BreakerState::Closed);
    // The other held-back alert goes out now (with any failed alert whose retry fell due).
    let out = one_batch(&mut f).await;
    assert!(matches!(out, ForwardOutcome::Processed { delivered: 1.., .. }), "{out:?}");
    let again: Vec<Value> = s.delayed().await.into_iter().map(|(v, _)| v).collect();
    assert!(again.iter().all(|v| v["_moog_retry_count"] == 1), "only the real failures counted");
    assert!(again.iter().all(|v| v["hostname"] != "h4" && v["hostname"] != "h5"), "held-back alerts burnt no retry");
}

#[tokio::test]
async fn rate_limited_alerts_wait_and_are_never_dropped() {
    let s = setup().await;
    let mut cfg = s.config(OutputFormat::Legacy);
    cfg.rate_limit = Some((5, Duration::from_secs(1)));
    let mut f = s.forwarder(cfg).await;
    s.push(&(0..12).map(|i| alert(i, None)).collect::<Vec<_>>()).await;
    let started = Instant::now();
    while s.receiver.accepted().len() < 12 && started.elapsed() < Duration::from_secs(10) {
        if let ForwardOutcome::Paused(d) = one_batch(&mut f).await {
            tokio::time::sleep(d).await;
        }
    }
    assert_eq!(s.receiver.accepted().len(), 12);
    // The shared limit is a GCRA key: a burst of 5, then one slot every 200 ms, so the other 7
    // take 1.4 s. (The sliding window it replaced freed all 5 slots a second after the burst:
    // 2 s for 12; the rate, 5 per second, is the same.)
    assert!(
        started.elapsed() >= Duration::from_millis(1350),
        "12 alerts at 5/s with a burst of 5 take 1.4 s: {:?}",
        started.elapsed()
    );
    assert!(s.delayed().await.is_empty() && s.dlq().await.is_empty(), "no retry burnt, nothing dead-lettered");
}

#[tokio::test]
async fn the_alerts_file_gets_alerts_but_never_the_token() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let mut cfg = s.config(OutputFormat::MoogRestLam);
    cfg.destination = Destination::File(path.clone());
    let mut f = s.forwarder(cfg).await;
    s.push(&[alert(1, Some(2)), alert(2, None)]).await;
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { delivered: 2, .. }));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("CRITICAL 1") && text.contains("CRITICAL 2"), "{text}");
    assert!(!text.contains("moog-key"), "the token must not be written: {text}");
}

fn requests_counted(m: &ForwarderMetrics, status: &'static str, reason: &'static str) -> u64 {
    m.requests.get_or_create(&mutt_forwarder::metrics::RequestLabels { status, reason }).get()
}

#[tokio::test]
async fn a_rejected_rest_lam_batch_dead_letters_only_the_rejected_alerts() {
    let s = setup().await;
    let alerts: Vec<Alert> = (0..100).map(|i| alert(i, None)).collect();
    let bad: Vec<String> = [7, 50, 93].iter().map(|&i| alerts[i].event_id.clone()).collect();
    s.receiver.set_mode(ReceiverMode::RejectEvents { field: "external_id".into(), values: bad.clone(), status: 422 });
    let mut f = s.forwarder(s.config(OutputFormat::MoogRestLam)).await;
    s.push(&alerts).await;
    let out = one_batch(&mut f).await;
    assert!(
        matches!(out, ForwardOutcome::Processed { delivered: 97, dead_lettered: 3, retried: 0, put_back: 0, .. }),
        "{out:?}"
    );
    let dlq = s.dlq().await;
    let mut dead: Vec<String> = dlq.iter().map(|d| d["_event_id"].as_str().unwrap().to_owned()).collect();
    dead.sort();
    let mut want = bad.clone();
    want.sort();
    assert_eq!(dead, want, "only the rejected alerts are dead-lettered");
    for d in &dlq {
        assert_eq!(d["_dlq_reason"], "rejected_by_receiver");
        let err = d["_dlq_error"].as_str().unwrap();
        assert!(
            err.starts_with("HTTP 422: ") && err.contains(d["_event_id"].as_str().unwrap()),
            "its own reason: {err}"
        );
    }
    let counts = s.receiver.counts();
    assert_eq!(counts.events, 97, "every other alert delivered once");
    // Halving: each rejected alert costs about 2·log2(100) requests, not one per alert.
    assert!(counts.requests <= 1 + 3 * 2 * 7, "{} requests", counts.requests);
    assert!(s.delayed().await.is_empty());
}

#[tokio::test]
async fn refused_credentials_hold_the_alerts_and_open_the_breaker() {
    for status in [401, 403] {
        let s = setup().await;
        s.receiver.set_mode(ReceiverMode::Status(status));
        let mut cfg = s.config(OutputFormat::MoogRestLam);
        cfg.breaker = Some((10, Duration::from_secs(1)));
        let (mut f, metrics) = s.forwarder_with_metrics(cfg).await;
        s.push(&(0..5).map(|i| alert(i, None)).collect::<Vec<_>>()).await;
        let out = one_batch(&mut f).await;
        assert!(matches!(out, ForwardOutcome::Paused(d) if d >= Duration::from_secs(1)), "{status}: {out:?}");
        assert_eq!(s.queue.breaker_state("moogsoft").await.unwrap().0, BreakerState::Open, "{status}: opened at once");
        assert_eq!(requests_counted(&metrics, "fail", "unauthorized"), 1, "{status}");
        // Open: nothing more is sent, nothing is dead-lettered or burns a retry.
        assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Paused(_)));
        assert_eq!(s.receiver.counts().requests, 1, "{status}");
        assert!(s.dlq().await.is_empty() && s.delayed().await.is_empty(), "{status}: held, not dead-lettered");
        assert_eq!(s.queue.depth(QueueId::Alert).await.unwrap(), 5, "{status}: all back in the queue");
        // The key is fixed: the probe after the open period delivers them, in their order.
        s.receiver.set_mode(ReceiverMode::Succeed);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let out = one_batch(&mut f).await;
        assert!(matches!(out, ForwardOutcome::Processed { delivered: 5, .. }), "{status}: {out:?}");
        let hosts: Vec<Value> =
            s.receiver.accepted()[0].body["events"].as_array().unwrap().iter().map(|e| e["source"].clone()).collect();
        assert_eq!(hosts, (0..5).map(|i| json!(format!("h{i}"))).collect::<Vec<_>>(), "{status}: order kept");
    }
}

#[tokio::test]
async fn refused_credentials_without_a_breaker_pause_and_hold() {
    let s = setup().await;
    s.receiver.set_mode(ReceiverMode::Status(401));
    let mut f = s.forwarder(s.config(OutputFormat::Legacy)).await;
    s.push(&[alert(1, None), alert(2, None)]).await;
    for _ in 0..3 {
        let out = one_batch(&mut f).await;
        assert!(matches!(out, ForwardOutcome::Paused(d) if d >= Duration::from_secs(1)), "{out:?}");
    }
    assert!(s.dlq().await.is_empty() && s.delayed().await.is_empty());
    assert_eq!(s.queue.depth(QueueId::Alert).await.unwrap(), 2);
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_carries_no_credentials() {
    let elsewhere = WebhookReceiver::start().await;
    // Reachable under another host name: the redirect would work if it were followed.
    let target = format!("http://localhost:{}/events", elsewhere.addr().port());
    reqwest::Client::new().post(&target).body("{}").send().await.expect("localhost reaches the other receiver");
    let before = elsewhere.counts().requests;
    for (format, auth) in [
        (OutputFormat::MoogRestLam, LamAuth::Token(mutt_core::Secret::new("moog-key"))),
        (OutputFormat::MoogRestLam, LamAuth::Basic { user: "u".into(), password: mutt_core::Secret::new("moog-key") }),
        (OutputFormat::Legacy, LamAuth::None),
    ] {
        for status in [307, 308, 302] {
            let s = setup().await;
            s.receiver.set_mode(ReceiverMode::Redirect { status, location: target.clone() });
            let mut cfg = s.config(format);
            cfg.lam_auth = auth.clone();
            cfg.breaker = Some((10, Duration::from_secs(60)));
            let (mut f, metrics) = s.forwarder_with_metrics(cfg).await;
            s.push(&[alert(1, None)]).await;
            let out = one_batch(&mut f).await;
            assert!(matches!(out, ForwardOutcome::Paused(_)), "{format:?} {status}: {out:?}");
            assert_eq!(elsewhere.counts().requests, before, "{format:?} {status}: nothing reached the other host");
            assert_eq!(requests_counted(&metrics, "fail", "redirect"), 1);
            assert!(s.dlq().await.is_empty(), "held, not dead-lettered");
            assert_eq!(s.queue.depth(QueueId::Alert).await.unwrap(), 1);
            assert_eq!(s.queue.breaker_state("moogsoft").await.unwrap().0, BreakerState::Open);
        }
    }
}

#[tokio::test]
async fn a_redirect_within_the_same_origin_is_followed_with_the_credentials() {
    let s = setup().await;
    let moved = format!("http://{}/moved", s.receiver.addr());
    s.receiver.set_mode(ReceiverMode::Redirect { status: 307, location: moved });
    let mut f = s.forwarder(s.config(OutputFormat::MoogRestLam)).await;
    s.push(&[alert(1, None)]).await;
    assert!(matches!(one_batch(&mut f).await, ForwardOutcome::Processed { delivered: 1, .. }));
    let accepted = s.receiver.accepted();
    assert_eq!(accepted.len(), 1, "delivered at the new path");
    assert_eq!(accepted[0].body["auth_token"], "moog-key", "the body, token included, went to the same origin");
}
