//! The queue over TLS, through Sentinel (across a failover) and on a Redis Cluster, each with
//! redis-server processes of the test's own.

#[macro_use]
mod suite;

use mutt_core::PodName;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue, Topology};
use mutt_queue::{Backend, ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use mutt_testkit::{RedisServer, TestCertificates};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn tls_with_a_private_ca() {
    let certs = TestCertificates::generate().expect("openssl makes test certificates");
    let server = RedisServer::start_tls(&certs).unwrap();
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    // Without the CA the server's certificate is refused.
    let untrusted = RedisQueue::connect(&RedisConfig::single(url.clone(), KeySpace::default())).await;
    assert!(untrusted.is_err(), "a certificate from an unknown CA must not be accepted");
    let ca = certs.ca.clone();
    conformance!(
        run || {
            let config = RedisConfig {
                ca_file: Some(ca.clone()),
                ..RedisConfig::single(url.clone(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()))
            };
            async move { Arc::new(RedisQueue::connect(&config).await.expect("TLS connect")) as Arc<dyn Backend> }
        }
    );
}

/// verify-full for Redis: a server whose certificate is signed by the trusted CA but names another
/// host is refused (the URL says 127.0.0.1; the certificate says wrong.example).
#[tokio::test]
async fn tls_refuses_a_certificate_for_another_name() {
    let certs = TestCertificates::generate().expect("openssl makes test certificates");
    let (cert, key) = certs.issue("wrong", "DNS:wrong.example").expect("wrong-name certificate");
    let trusting_the_ca = |server: &RedisServer| RedisConfig {
        ca_file: Some(certs.ca.clone()),
        ..RedisConfig::single(server.url(), KeySpace::default())
    };
    let wrong = RedisServer::start_tls_with(&certs, &cert, &key).unwrap();
    let refused = RedisQueue::connect(&trusting_the_ca(&wrong)).await;
    let err = refused.err().expect("a certificate for another name must not be accepted").to_string();
    assert!(err.to_lowercase().contains("certificate") || err.contains("NotValidForName"), "{err}");
    // The same CA with the right name is accepted (so the refusal was the name, not the CA).
    let right = RedisServer::start_tls(&certs).unwrap();
    RedisQueue::connect(&trusting_the_ca(&right)).await.expect("the matching certificate is accepted");
}

fn cluster_prefix() -> String {
    // One hash tag for all keys: every script's keys share a slot.
    format!("{{{}}}:", mutt_testkit::unique_prefix().trim_end_matches(':'))
}

#[tokio::test]
async fn cluster_passes_the_conformance_suite() {
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start_with(false, &["--cluster-enabled", "yes", "--cluster-config-file", "{dir}/nodes.conf"])
                .unwrap()
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Wait until every node sees the cluster as ok.
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in &nodes {
        loop {
            let info = std::process::Command::new("redis-cli")
                .args(["-p", &n.port().to_string(), "cluster", "info"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "cluster did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    conformance!(
        run || {
            let config = RedisConfig {
                topology: Topology::Cluster { nodes: urls.clone() },
                ..RedisConfig::single("", KeySpace::with_prefix(&cluster_prefix()))
            };
            async move { Arc::new(RedisQueue::connect(&config).await.expect("cluster connect")) as Arc<dyn Backend> }
        }
    );
}

#[tokio::test]
async fn sentinel_follows_a_failover_without_losing_messages() {
    let master = RedisServer::start(false).unwrap();
    let replica = RedisServer::start_with(false, &["--replicaof", "127.0.0.1", &master.port().to_string()]).unwrap();
    let sentinel = RedisServer::start_sentinel("mymaster", master.port()).unwrap();
    let prefix = mutt_testkit::unique_prefix();
    let config = RedisConfig {
        topology: Topology::Sentinel { master_name: "mymaster".into(), sentinels: vec![sentinel.url()] },
        ..RedisConfig::single("", KeySpace::with_prefix(&prefix))
    };
    // The replica must be attached before anything is written.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = std::process::Command::new("redis-cli")
            .args(["-p", &master.port().to_string(), "INFO", "replication"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&info.stdout).to_string();
        if text.contains("connected_slaves:1") && text.contains("state=online") {
            break;
        }
        assert!(Instant::now() < deadline, "replica did not attach: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queue = RedisQueue::connect(&config).await.expect("connect through sentinel");
    let msgs = |r: std::ops::Range<u32>| r.map(|i| format!("{{\"id\":{i}}}").into_bytes()).collect::<Vec<_>>();
    queue.push(QueueId::Ingest, &msgs(0..100)).await.unwrap();
    let mut cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse("sentinel-worker").unwrap());
    cc.heartbeat_interval = Duration::from_millis(300);
    cc.heartbeat_ttl = Duration::from_secs(2);
    let mut consumer = queue.consumer(cc).await.unwrap();
    let mut seen = HashSet::new();
    fn take(seen: &mut HashSet<u64>, lease: &mutt_queue::Lease) {
        for m in &lease.messages {
            let v: serde_json::Value = serde_json::from_slice(m).unwrap();
            seen.insert(v["id"].as_u64().unwrap());
        }
    }
    for _ in 0..5 {
        let lease = consumer.lease(10, Duration::from_secs(1)).await.unwrap().unwrap();
        take(&mut seen, &lease);
        consumer.settle(&lease, &Settlement::new()).await.unwrap();
    }
    // Let the replica catch up, then fail over.
    let replica_port = replica.port().to_string();
    let wait_sync = std::process::Command::new("redis-cli")
        .args(["-p", &master.port().to_string(), "WAIT", "1", "2000"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&wait_sync.stdout).trim(), "1", "replica in sync");
    // The sentinel learns of the replica from the master's INFO (every 10 s): until it has,
    // FAILOVER answers NOGOODSLAVE, so ask again until it is accepted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &sentinel.port().to_string(), "SENTINEL", "FAILOVER", "mymaster"])
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout).to_string();
        if answer.contains("OK") {
            break;
        }
        assert!(answer.contains("NOGOODSLAVE") && Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &sentinel.port().to_string(), "SENTINEL", "get-master-addr-by-name", "mymaster"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&replica_port) {
            break;
        }
        assert!(Instant::now() < deadline, "failover did not happen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes and leases go to the new master once the client has followed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if queue.push(QueueId::Ingest, &msgs(100..150)).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "pushing after the failover kept failing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 150 && Instant::now() < deadline {
        match consumer.lease(50, Duration::from_millis(500)).await {
            Ok(Some(lease)) => {
                take(&mut seen, &lease);
                while consumer.settle(&lease, &Settlement::new()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(None) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert_eq!(seen.len(), 150, "every message consumed across the failover");
    consumer.shutdown().await.unwrap();
    assert_eq!(queue.depth(QueueId::Ingest).await.unwrap(), 0);
}
