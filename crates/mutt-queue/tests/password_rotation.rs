//! The Redis password rotated on the live test server while messages flow (spec §11.4 and its
//! [ADD]): `ACL SETUSER` on a user of the test's own plus `CLIENT KILL USER` (every connection
//! opens again); the queue moves to REDIS_PASS_NEXT, later back to REDIS_PASS_CURRENT, no
//! message is lost, and the log names the password that worked without printing it. The user
//! is deleted afterwards, even when the test fails.

use mutt_core::credentials::{Candidate, Credentials};
use mutt_core::{PodName, Secret};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CURRENT: &str = "rpw-current-71ac02";
const NEXT: &str = "rpw-next-e4d913";
const MESSAGES: usize = 1500;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Deletes the test's ACL user when the test ends, however it ends.
struct AclUser {
    admin_url: String,
    name: String,
}

impl Drop for AclUser {
    fn drop(&mut self) {
        if let Ok(mut c) = redis::Client::open(self.admin_url.as_str()).and_then(|c| c.get_connection()) {
            let _: redis::RedisResult<i64> = redis::cmd("ACL").arg("DELUSER").arg(&self.name).query(&mut c);
        }
    }
}

async fn admin(cmd: &mut redis::Cmd) {
    let client = redis::Client::open(mutt_testkit::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
}

/// New password only, then every connection of the user cut: all must authenticate again.
async fn rotate(user: &str, password: &str) {
    admin(redis::cmd("ACL").arg("SETUSER").arg(user).arg("resetpass").arg(format!(">{password}"))).await;
    admin(redis::cmd("CLIENT").arg("KILL").arg("USER").arg(user)).await;
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn n_of(raw: &[u8]) -> usize {
    String::from_utf8_lossy(raw).trim_start_matches("m").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_the_live_server_while_messages_flow() {
    let log = Log::default();
    let writer = log.clone();
    let _ = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).try_init();
    let prefix = mutt_testkit::unique_prefix();
    let user = format!("rot-{}", prefix.trim_end_matches(':'));
    let _guard = AclUser { admin_url: mutt_testkit::redis_url(), name: user.clone() };
    admin(
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg("on")
            .arg(format!(">{CURRENT}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all"),
    )
    .await;

    let url = mutt_testkit::redis_url().replacen("redis://", &format!("redis://{user}@"), 1);
    let credentials = Arc::new(Credentials::new(vec![
        Candidate::new("REDIS_PASS_CURRENT", Secret::new(CURRENT)),
        Candidate::new("REDIS_PASS_NEXT", Secret::new(NEXT)),
    ]));
    let keys = KeySpace::with_prefix(&prefix);
    let queue = RedisQueue::connect_with_credentials(&RedisConfig::single(url, keys.clone()), credentials.clone())
        .await
        .expect("connects with the current password");
    assert_eq!(credentials.working().as_deref(), Some("REDIS_PASS_CURRENT"));

    let pushed = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (queue, pushed) = (queue.clone(), pushed.clone());
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                let m = vec![format!("m{i}").into_bytes()];
                while queue.push(QueueId::Ingest, &m).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                pushed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let consumer = {
        let (queue, seen) = (queue.clone(), seen.clone());
        tokio::spawn(async move {
            let pod = PodName::parse("rotation-consumer").unwrap();
            let mut c = queue.consumer(ConsumerConfig::new(WorkerRole::Alerter, pod)).await.unwrap();
            while seen.lock().unwrap().len() < MESSAGES {
                match c.lease(50, Duration::from_millis(200)).await {
                    Ok(Some(lease)) => {
                        // As the workers do: a settle that failed is retried (it is idempotent;
                        // one whose reply was lost has applied, and releasing instead would
                        // leave this test waiting for messages already consumed).
                        while c.settle(&lease, &Settlement::new()).await.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        seen.lock().unwrap().extend(lease.messages.iter().map(|m| n_of(m)));
                    }
                    Ok(None) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            c.shutdown().await.unwrap();
        })
    };
    let progress = |n: usize| {
        let seen = seen.clone();
        move || seen.lock().unwrap().len() >= n
    };
    wait_for("first messages", progress(200)).await;
    rotate(&user, NEXT).await;
    let at = pushed.load(Ordering::Relaxed);
    wait_for("pushes after the rotation", || pushed.load(Ordering::Relaxed) >= at + 200).await;
    wait_for("consumed after the rotation", progress(at + 150)).await;
    assert_eq!(credentials.working().as_deref(), Some("REDIS_PASS_NEXT"));
    // Rolled back: CURRENT is tried again.
    rotate(&user, CURRENT).await;
    let at = pushed.load(Ordering::Relaxed);
    wait_for("pushes after the roll-back", || pushed.load(Ordering::Relaxed) >= at + 200).await;
    wait_for("consumed after the roll-back", progress(at + 150)).await;
    assert_eq!(credentials.working().as_deref(), Some("REDIS_PASS_CURRENT"));

    tokio::time::timeout(Duration::from_secs(60), producer).await.expect("producer done").unwrap();
    tokio::time::timeout(Duration::from_secs(60), consumer).await.expect("consumer done").unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..MESSAGES).collect::<BTreeSet<_>>(), "every message consumed");
    let status = queue.status().await.unwrap();
    assert_eq!(queue.depth(QueueId::Ingest).await.unwrap(), 0, "{status:?}");
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(text.contains("authenticated with REDIS_PASS_NEXT"), "{text}");
    assert!(text.contains("authenticated with REDIS_PASS_CURRENT"), "{text}");
    assert!(!text.contains(CURRENT) && !text.contains(NEXT), "a password in the log:\n{text}");
}
