//! [`Coordination`] on Redis: Lua scripts for the sliding-window rate limit, the circuit
//! breaker and the unhandled counter; delivered ids (see `delivered`); `mutt:config:*` keys and
//! pub/sub for dynamic configuration and rule reloads (the original's names).

use super::{RedisQueue, delivered, redis_err, scripts};
use crate::coordination::ConfigChangeFn;
use crate::{BreakerPermit, BreakerState, Coordination, QueueError, RateGrant, UnhandledCount, UnhandledKey};
use async_trait::async_trait;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl RedisQueue {
    /// The keys starting with `prefix`. In a cluster SCAN covers one node only: it goes to the
    /// node holding the prefix's slot, which holds every configuration key and unhandled
    /// counter when the prefix is hash-tagged (`{mutt}:`, which a cluster needs anyway for
    /// MGET); unrouted, SCAN reached whichever node the client picked.
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, QueueError> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let super::AnyConnection::Cluster(c) = self.connection() else {
            return self.scan(&format!("{prefix}*")).await;
        };
        let route =
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(prefix, SlotAddr::Master)));
        super::scan_pages(&format!("{prefix}*"), |cmd| {
            // Clones share the one cluster connection; each page's future owns its handle.
            let (mut c, route) = (c.clone(), route.clone());
            async move {
                let reply = c.route_command(cmd, route).await.map_err(redis_err("scanning keys"))?;
                redis::from_redis_value(reply).map_err(|e| QueueError::Protocol(format!("SCAN reply: {e}")))
            }
        })
        .await
    }

    /// The string values of `names`, read 500 at a time; a key gone meanwhile, or holding no
    /// string, is left out (MGET answers nil for both).
    async fn string_values(
        &self,
        names: &[String],
        context: &'static str,
    ) -> Result<Vec<(String, String)>, QueueError> {
        let mut out = Vec::with_capacity(names.len());
        let mut c = self.connection();
        for chunk in names.chunks(500) {
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(chunk).query_async(&mut c).await.map_err(redis_err(context))?;
            out.extend(chunk.iter().zip(values).filter_map(|(name, v)| Some((name.clone(), v?))));
        }
        Ok(out)
    }

    /// Tells every process that `key` changed: its name on the original's updates channel.
    async fn announce_config_change(&self, c: &mut super::AnyConnection, key: &str) -> Result<(), QueueError> {
        redis::cmd("PUBLISH")
            .arg(self.updates_channel())
            .arg(key)
            .query_async::<()>(c)
            .await
            .map_err(redis_err("announcing a configuration change"))
    }

    /// The pub/sub channel that asks alerters to reload their rules (`mutt:config:reload`;
    /// any payload means "reload").
    fn reload_channel(&self) -> String {
        format!("{}:reload", self.keys.config_prefix)
    }

    /// The original's channel announcing a dynamic configuration change (`mutt:config:updates`;
    /// the payload is the key's name).
    fn updates_channel(&self) -> String {
        format!("{}:updates", self.keys.config_prefix)
    }

    /// Calls `on_message` with `None` each time the subscription to `channel` is (re)made,
    /// and with the payload of every message, until `stop` resolves; reconnects with backoff
    /// when the connection drops (pub/sub needs a connection of its own).
    async fn listen(
        &self,
        channel: String,
        on_message: impl Fn(Option<&str>) + Send,
        stop: impl std::future::Future<Output = ()>,
    ) {
        use futures_util::StreamExt;
        let mut stop = std::pin::pin!(stop);
        let mut wait = Duration::from_millis(200);
        loop {
            let session = async {
                let mut pubsub = self.connector.pubsub().await?;
                pubsub.subscribe(&channel).await?;
                on_message(None);
                let mut stream = pubsub.on_message();
                while let Some(msg) = stream.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    on_message(Some(&payload));
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                _ = &mut stop => return,
                r = session => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, channel = %channel, "subscription lost; reconnecting");
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    /// Keeps the examples [`scripts::UNHANDLED`] asked for (`wanted`: events of `batch`) as
    /// `<counter>:sample`, living as long as a counter's window; NX keeps the first one. Of a
    /// (hostname, signature) the batch's first message is kept ([`UnhandledKey::samples`]).
    /// Native `SET`s: the messages do not pass through Lua. Best effort: a failure is logged.
    async fn keep_unhandled_samples<'a>(
        &self,
        batch: &[UnhandledKey],
        wanted: impl Iterator<Item = &'a UnhandledKey>,
        expiry: Duration,
    ) {
        let wanted: std::collections::HashSet<(&str, &str)> =
            wanted.map(|e| (e.hostname.as_str(), e.signature.as_str())).collect();
        if wanted.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        let mut sent = 0;
        for s in UnhandledKey::samples(batch) {
            if !wanted.contains(&(s.hostname.as_str(), s.signature.as_str())) {
                continue;
            }
            let key = format!("{}:sample", self.keys.unhandled(&s.hostname, &s.signature).0);
            pipe.cmd("SET").arg(key).arg(s.message).arg("EX").arg(expiry.as_secs().max(1)).arg("NX").ignore();
            sent += 1;
        }
        if sent == 0 {
            return;
        }
        let mut c = self.connection();
        if let Err(e) = pipe.query_async::<()>(&mut c).await {
            tracing::warn!(error = %e, samples = sent, "keeping examples of unhandled messages failed");
        }
    }
}

#[async_trait]
impl Coordination for RedisQueue {
    async fn rate_limit_take(
        &self,
        name: &str,
        limit: u64,
        window: Duration,
        want: u64,
    ) -> Result<RateGrant, QueueError> {
        let key = format!("{}rate_limit:{name}", self.keys.prefix);
        let mut c = self.connection();
        let (granted, wait_ms): (u64, u64) = scripts::GCRA
            .key(key)
            .arg(limit.max(1))
            .arg(window.as_millis().max(1) as u64)
            .arg("")
            .arg(want)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("rate limit"))?;
        Ok(RateGrant { granted, retry_after: Duration::from_millis(wait_ms) })
    }

    async fn breaker_acquire(&self, name: &str, open_for: Duration) -> Result<BreakerPermit, QueueError> {
        let k = self.keys.breaker(name);
        let seq = self.member_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut c = self.connection();
        let (verdict, wait_ms): (i64, u64) = scripts::BREAKER_ACQUIRE
            .key(&k[0])
            .key(&k[1])
            .key(&k[2])
            .key(&k[3])
            .arg(open_for.as_millis() as u64)
            // A probe that never reports back (its forwarder died) frees the slot after this.
            .arg(30_000)
            .arg(format!("{}:{seq}", self.instance))
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("circuit breaker"))?;
        Ok(match verdict {
            1 => BreakerPermit::Go,
            2 => BreakerPermit::Probe,
            _ => BreakerPermit::Wait { retry_after: Duration::from_millis(wait_ms.max(1)) },
        })
    }

    async fn breaker_record(&self, name: &str, success: bool, threshold: u64) -> Result<BreakerState, QueueError> {
        let k = self.keys.breaker(name);
        let mut c = self.connection();
        let state: String = scripts::BREAKER_RECORD
            .key(&k[0])
            .key(&k[1])
            .key(&k[2])
            .key(&k[3])
            .arg(if success { "success" } else { "failure" })
            .arg(threshold.max(1))
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("circuit breaker"))?;
        Ok(BreakerState::parse(&state))
    }

    async fn breaker_state(&self, name: &str) -> Result<(BreakerState, u64), QueueError> {
        let k = self.keys.breaker(name);
        let mut c = self.connection();
        let (state, failures): (Option<String>, Option<u64>) =
            redis::cmd("MGET").arg(&k[0]).arg(&k[1]).query_async(&mut c).await.map_err(redis_err("circuit breaker"))?;
        Ok((state.as_deref().map(BreakerState::parse).unwrap_or(BreakerState::Closed), failures.unwrap_or(0)))
    }

    async fn already_delivered(&self, ids: &[String]) -> Result<Vec<bool>, QueueError> {
        Ok(self.delivered_until(ids).await?.into_iter().map(|e| e.is_some()).collect())
    }

    async fn delivered_until(&self, ids: &[String]) -> Result<Vec<Option<i64>>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        let lookup = delivered::Lookup::new(&self.keys, &mut pipe, ids);
        let mut c = self.connection();
        let context = "reading delivered ids";
        let replies: Vec<redis::Value> = pipe.query_async(&mut c).await.map_err(redis_err(context))?;
        let parse = |e: redis::ParsingError| redis_err(context)(e.into());
        // The set's scores, then one string per second fetched.
        let mut replies = replies.into_iter();
        let scores: Vec<Option<f64>> =
            replies.next().map(redis::from_redis_value).transpose().map_err(parse)?.unwrap_or_default();
        let strings: Vec<Option<Vec<u8>>> =
            replies.map(redis::from_redis_value).collect::<Result<_, _>>().map_err(parse)?;
        Ok(lookup.answer(scores, &strings, chrono::Utc::now().timestamp_millis()))
    }

    async fn mark_delivered(&self, ids: &[String], ttl: Duration) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.delivered_commands(&mut pipe, ids, ttl);
        let mut c = self.connection();
        pipe.query_async::<()>(&mut c).await.map_err(redis_err("recording delivered ids"))
    }

    async fn admit(&self, req: crate::AdmitRequest<'_>) -> Result<(BreakerPermit, RateGrant), QueueError> {
        self.admit_batch(req).await
    }

    async fn record_delivery(
        &self,
        breaker: Option<crate::BreakerOutcomes<'_>>,
        delivered: &[String],
        ttl: Duration,
    ) -> Result<(Vec<BreakerState>, u64), QueueError> {
        self.record_batch(breaker, delivered, ttl).await
    }

    async fn count_unhandled(
        &self,
        events: &[UnhandledKey],
        threshold: u64,
        expiry: Duration,
    ) -> Result<Vec<bool>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = scripts::UNHANDLED.prepare_invoke();
        for e in events {
            let (counter, triggered) = self.keys.unhandled(&e.hostname, &e.signature);
            inv.key(counter).key(triggered);
        }
        inv.arg(threshold.max(1)).arg(expiry.as_secs().max(1));
        for e in events {
            inv.arg(&e.event_id);
        }
        let mut c = self.connection();
        let codes: Vec<i64> = inv.invoke_async(&mut c).await.map_err(redis_err("counting unhandled events"))?;
        let wanted = events.iter().zip(&codes).filter(|(_, code)| *code & 2 != 0).map(|(e, _)| e);
        self.keep_unhandled_samples(events, wanted, expiry).await;
        Ok(codes.into_iter().map(|code| code & 1 == 1).collect())
    }

    async fn unhandled_counts(&self, limit: usize) -> Result<Vec<UnhandledCount>, QueueError> {
        let prefix = &self.keys.unhandled_prefix;
        let names = self.scan_prefix(&format!("{prefix}:")).await?;
        // Counters hold a number, markers an event id, samples a message.
        let out: Vec<UnhandledCount> = self
            .string_values(&names, "reading unhandled counters")
            .await?
            .into_iter()
            .filter_map(|(name, v)| {
                let (hostname, signature, part) = UnhandledCount::parse_key(prefix, &name)?;
                Some(UnhandledCount::of_part(hostname, signature, part, v))
            })
            .collect();
        Ok(UnhandledCount::merge(out, limit))
    }

    async fn flap_count(&self, events: &[crate::FlapEvent]) -> Result<Vec<crate::FlapVerdict>, QueueError> {
        self.count_flaps(events).await
    }

    async fn flap_claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<crate::FlapSummary>, QueueError> {
        self.claim_flaps(limit, lease).await
    }

    async fn flap_ack(&self, acks: &[crate::FlapAck]) -> Result<u64, QueueError> {
        self.ack_flaps(acks).await
    }

    async fn config_values(&self, keys: &[&str]) -> Result<Vec<Option<String>>, QueueError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(format!("{}:{k}", self.keys.config_prefix));
        }
        let mut c = self.connection();
        // One MGET: in a cluster the keys share a slot through the hash-tagged prefix.
        cmd.query_async(&mut c).await.map_err(redis_err("reading dynamic configuration"))
    }

    async fn set_config_value(&self, key: &str, value: &str) -> Result<Option<String>, QueueError> {
        let name = format!("{}:{key}", self.keys.config_prefix);
        let mut c = self.connection();
        // SET … GET (Redis 6.2+): the old value and the new one in one step.
        let old: Option<String> = redis::cmd("SET")
            .arg(&name)
            .arg(value)
            .arg("GET")
            .query_async(&mut c)
            .await
            .map_err(redis_err("writing dynamic configuration"))?;
        self.announce_config_change(&mut c, key).await?;
        Ok(old)
    }

    async fn delete_config_value(&self, key: &str) -> Result<Option<String>, QueueError> {
        let name = format!("{}:{key}", self.keys.config_prefix);
        let mut c = self.connection();
        // GETDEL (Redis 6.2+, as SET … GET above): the removed value in the same step.
        let old: Option<String> = redis::cmd("GETDEL")
            .arg(&name)
            .query_async(&mut c)
            .await
            .map_err(redis_err("deleting dynamic configuration"))?;
        self.announce_config_change(&mut c, key).await?;
        Ok(old)
    }

    async fn config_entries(&self) -> Result<Vec<(String, String)>, QueueError> {
        let prefix = format!("{}:", self.keys.config_prefix);
        let names: Vec<String> = self
            .scan_prefix(&prefix)
            .await?
            .into_iter()
            // The original skipped a key named like its channel (spec §7.2).
            .filter(|n| n.len() > prefix.len() && n != &format!("{prefix}updates"))
            .collect();
        let values = self.string_values(&names, "reading dynamic configuration").await?;
        Ok(values.into_iter().map(|(name, v)| (name[prefix.len()..].to_owned(), v)).collect())
    }

    async fn publish_rules_changed(&self) -> Result<Option<u64>, QueueError> {
        let mut c = self.connection();
        let listeners: u64 = redis::cmd("PUBLISH")
            .arg(self.reload_channel())
            .arg(r#"{"reload":"rules"}"#)
            .query_async(&mut c)
            .await
            .map_err(redis_err("publishing reload"))?;
        Ok(Some(listeners))
    }

    async fn watch_config_changes(&self, on_change: ConfigChangeFn, stop: CancellationToken) {
        self.listen(self.updates_channel(), on_change, stop.cancelled_owned()).await
    }

    async fn watch_rules_changed(&self, on_change: Box<dyn Fn() + Send + Sync>, stop: CancellationToken) {
        // Any message means "reload"; the subscription itself does not.
        let on_message = move |m: Option<&str>| {
            if m.is_some() {
                on_change()
            }
        };
        self.listen(self.reload_channel(), on_message, stop.cancelled_owned()).await
    }
}
