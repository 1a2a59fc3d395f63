//! End to end, in one process: HTTP ingest → Redis → alerter → PostgreSQL audit → alert queue →
//! forwarder → webhook receiver. Real redis-server and PostgreSQL (scripts/test-services.sh).

use mutt_core::MatchType;
use mutt_store::NewRule;
use mutt_testapp::{ApiClient, BackendKind, Site};
use mutt_testkit::WebhookReceiver;
use muttd::app::{self, App, Role, StartOptions};
use muttd::config::Config;
use muttd::secrets::EnvSecrets;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "test-ingest-key";
const MOOG_KEY: &str = "test-moog-key";

struct Pipeline {
    app: App,
    receiver: WebhookReceiver,
    site: Site,
    /// The ingestor, with `INGEST_KEY`.
    ingest: ApiClient,
}

impl Pipeline {
    async fn start() -> Self {
        let receiver = WebhookReceiver::start().await;
        let site = Site::fresh(BackendKind::RedisPostgres).await;
        let mut config = Config::default();
        config.redis.url = site.redis_url().map(str::to_owned);
        config.redis.key_prefix = site.key_prefix().unwrap_or_default().to_owned();
        config.database.url = site.database_url().map(str::to_owned);
        config.forwarder.webhook_url = Some(receiver.url());
        config.ingestor.port = 0;
        config.alerter.port = 0;
        config.forwarder.port = 0;
        config.web.port = 0;
        config.worker.block_timeout_secs = 0.2;
        let secrets = EnvSecrets::new(HashMap::from([
            ("INGEST_API_KEY".to_string(), INGEST_KEY.to_string()),
            ("MOOG_API_KEY".to_string(), MOOG_KEY.to_string()),
        ]));
        let app = app::start(
            &config,
            &secrets,
            &[Role::Ingestor, Role::Alerter, Role::Forwarder],
            StartOptions { migrate: true },
        )
        .await
        .expect("pipeline starts");
        let ingest = ApiClient::new(format!("http://{}", app.address(Role::Ingestor).unwrap()), Some(INGEST_KEY));
        Self { app, receiver, site, ingest }
    }

    async fn add_rule(&self, rule: NewRule) -> i32 {
        let store = self.app.store.clone().unwrap();
        let id = store.create_rule(&rule).await.unwrap();
        let metrics = mutt_alerter::AlerterMetrics::register(&mutt_service::Metrics::new());
        self.app.alerter_rules.as_ref().unwrap().reload(store.as_ref(), &metrics).await.unwrap();
        id
    }

    async fn post(&self, key: Option<&str>, body: Value) -> (u16, Value) {
        let reply = self.ingest.with_key(key).post("/ingest", &body).await;
        (reply.status, reply.body)
    }

    async fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        let (c, conn) =
            tokio_postgres::connect(self.site.database_url().unwrap(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c.query(sql, &[]).await.unwrap()
    }

    async fn ingest_depth(&self) -> u64 {
        self.app.queue.depth(mutt_queue::QueueId::Ingest).await.unwrap()
    }
}

fn rule(text: &str, prod: &str, dev: &str, team: &str) -> NewRule {
    NewRule {
        match_string: Some(text.into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 10,
        prod_handling: prod.into(),
        dev_handling: dev.into(),
        team_assignment: team.into(),
        is_active: true,
        flap_threshold: None,
        flap_window_secs: None,
    }
}

fn event(host: &str, message: &str) -> Value {
    json!({"hostname": host, "message": message, "timestamp": "2025-11-08T12:00:00Z", "program": "kernel"})
}

#[tokio::test]
async fn matching_event_is_audited_once_and_delivered_once() {
    let p = Pipeline::start().await;
    let rule_id = p.add_rule(rule("CRITICAL", "Page_and_ticket", "Ticket_only", "NETO")).await;

    let (status, body) = p.post(Some(INGEST_KEY), event("server-01", "CRITICAL: System failure detected")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "queued");
    let cid = body["correlation_id"].as_str().unwrap().to_owned();

    let got = p.receiver.wait_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "one webhook request");
    let req = &got[0];
    // The default output: a Moogsoft REST LAM request, authenticated by auth_token.
    assert_eq!(req.body["auth_token"], MOOG_KEY);
    let events = req.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev["class"], "NETO");
    assert_eq!(ev["description"], "CRITICAL: System failure detected");
    assert_eq!(ev["source_id"], "server-01");
    assert_eq!(ev["custom_info"]["_correlation_id"], cid.as_str());

    let rows = p
        .query(
            "SELECT matched_rule_id, handling_decision, forwarded_to_moog, hostname, raw_message FROM event_audit_log",
        )
        .await;
    assert_eq!(rows.len(), 1, "one audit row");
    assert_eq!(rows[0].get::<_, i32>(0), rule_id);
    assert_eq!(rows[0].get::<_, String>(1), "Page_and_ticket");
    assert!(rows[0].get::<_, bool>(2));
    assert_eq!(rows[0].get::<_, String>(3), "server-01");
    let raw: Value = serde_json::from_str(&rows[0].get::<_, String>(4)).unwrap();
    assert_eq!(raw["program"], "kernel", "unknown fields pass through");
    // The alert carried the event id as external_id and idempotency key; no API key anywhere.
    let event_id = raw["_event_id"].as_str().unwrap();
    assert_eq!(ev["external_id"], event_id);
    assert_eq!(req.headers.get("idempotency-key").unwrap(), event_id);
    assert!(!rows[0].get::<_, String>(4).contains(MOOG_KEY), "no secret in the audit trail");

    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.receiver.requests().len(), 1);
    p.app.stop().await.unwrap();
}

#[tokio::test]
async fn non_matching_event_leaves_no_audit_and_no_webhook() {
    let p = Pipeline::start().await;
    p.add_rule(rule("CRITICAL", "Page_and_ticket", "Ticket_only", "NETO")).await;
    let (status, _) = p.post(Some(INGEST_KEY), event("server-01", "fan tray ok")).await;
    assert_eq!(status, 200);
    // A marker that does match, sent after: once it is delivered, the first was processed too.
    let (status, _) = p.post(Some(INGEST_KEY), event("server-02", "CRITICAL marker")).await;
    assert_eq!(status, 200);
    let got = p.receiver.wait_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["events"][0]["source_id"], "server-02");
    let rows = p.query("SELECT hostname FROM event_audit_log").await;
    assert_eq!(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), vec!["server-02"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.receiver.requests().len(), 1);
    p.app.stop().await.unwrap();
}

#[tokio::test]
async fn audit_only_and_dev_host_handling() {
    let p = Pipeline::start().await;
    p.add_rule(rule("ERROR", "Ticket_only", "Ignore", "NetOps")).await;
    p.app.store.as_ref().unwrap().add_development_host("dev-router1").await.unwrap();
    p.add_rule(rule("never-matches-anything", "Ignore", "Ignore", "X")).await; // reloads lookups
    p.post(Some(INGEST_KEY), event("dev-router1", "ERROR on dev")).await;
    p.post(Some(INGEST_KEY), event("prod-router1", "ERROR on prod")).await;
    let got = p.receiver.wait_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["events"][0]["source_id"], "prod-router1");
    assert_eq!(got[0].body["events"][0]["class"], "NetOps");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rows = Vec::new();
    while Instant::now() < deadline {
        rows = p
            .query("SELECT hostname, handling_decision, forwarded_to_moog FROM event_audit_log ORDER BY hostname")
            .await;
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows: Vec<(String, String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        rows,
        vec![("dev-router1".into(), "Ignore".into(), false), ("prod-router1".into(), "Ticket_only".into(), true)]
    );
    p.app.stop().await.unwrap();
}

#[tokio::test]
async fn request_without_api_key_gets_401_and_nothing_is_queued() {
    let p = Pipeline::start().await;
    p.add_rule(rule("CRITICAL", "Page_and_ticket", "Ticket_only", "NETO")).await;
    for key in [None, Some("wrong-key"), Some("")] {
        let (status, body) = p.post(key, event("server-01", "CRITICAL: no key")).await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["message"], "Unauthorized");
        assert!(body["correlation_id"].is_string());
    }
    assert_eq!(p.ingest_depth().await, 0);
    // A marker with the key goes through; the rejected ones never appear.
    p.post(Some(INGEST_KEY), event("marker", "CRITICAL marker")).await;
    let got = p.receiver.wait_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["events"][0]["source_id"], "marker");
    assert_eq!(p.query("SELECT 1 FROM event_audit_log").await.len(), 1);
    p.app.stop().await.unwrap();
}

#[tokio::test]
async fn ingestor_refuses_to_start_without_a_key() {
    let mut config = Config::default();
    config.redis.url = Some(mutt_testkit::redis_url());
    config.redis.key_prefix = mutt_testkit::unique_prefix();
    config.ingestor.port = 0;
    let err = app::start(&config, &EnvSecrets::new(HashMap::new()), &[Role::Ingestor], StartOptions::default())
        .await
        .err()
        .expect("refuses to start");
    assert!(err.to_string().contains("INGEST_API_KEY"), "{err}");
}

#[tokio::test]
async fn rules_reload_through_pub_sub_within_a_second() {
    let p = Pipeline::start().await;
    let store = p.app.store.clone().unwrap();
    // Created behind the running alerter's back: only the reload message makes it known.
    store.create_rule(&rule("LINK-DOWN", "Page_and_ticket", "Ticket_only", "NetOps")).await.unwrap();
    // The alerter subscribes right after start; wait for it to be listening.
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.app.coordination.publish_rules_changed().await.unwrap() == Some(0) {
        assert!(Instant::now() < deadline, "the alerter listens on the reload channel");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = p.post(Some(INGEST_KEY), event("router1", "LINK-DOWN on Gi0/1")).await;
    assert_eq!(status, 200);
    let got = p.receiver.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the new rule was in force one second after the reload message");
    assert_eq!(got[0].body["events"][0]["class"], "NetOps");
    p.app.stop().await.unwrap();
}
