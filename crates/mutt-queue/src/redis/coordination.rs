//! [`Coordination`] on Redis: Lua scripts for the shared rate limit and the circuit breaker,
//! native commands for the unhandled counter, a sorted set of delivered ids, `mutt:config:*`
//! keys and pub/sub for dynamic configuration and rule reloads (the original's names).

use super::{RedisQueue, redis_err, scripts};
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

    /// The original's unhandled-event counter (spec §3.6a) for a batch, in native commands:
    /// Lua hashed every key and event id passed to it, and the counter ran three commands
    /// per event inside a script. Not atomic, and need not be: `INCRBY` and `SET NX` are, and
    /// they decide who fires. One round trip, and a second only when something fires, an
    /// example is kept or a suspended message was counted:
    ///
    /// 1. `MGET` of the (host, signature)s' triggered markers and, per (host, signature),
    ///    `SET counter 0 EX expiry NX` (the window anchored at the first sighting, on Redis
    ///    6.2 too) and `INCRBY` its events in the batch.
    /// 2. A marked (host, signature) is suspended: its count is taken back (and its counter
    ///    deleted when that leaves nothing), and only the event the marker names (a
    ///    redelivery) fires again. Otherwise the first event whose count reaches the threshold
    ///    claims the marker with `SET NX` and fires if it won; its counter is deleted.
    ///    Deviation: a count at or past the threshold claims (the original fired only at
    ///    exactly the threshold), so a redelivery after a crash between 1 and 2 still fires,
    ///    and a lowered threshold fires at the next sighting instead of never.
    ///
    /// Examples: the batch's first message of a (host, signature) is kept as
    /// `<counter>:sample` (NX: the window's first one wins) when its count passes 2 or it
    /// fires; a message seen once keeps none (one-off messages are most of unhandled traffic).
    /// The example's TTL is renewed so that it outlives the counter of its window.
    async fn count_unhandled_native(
        &self,
        events: &[UnhandledKey],
        threshold: u64,
        expiry: Duration,
    ) -> Result<Vec<bool>, QueueError> {
        let threshold = threshold.max(1);
        let expiry_s = expiry.as_secs().max(1);
        // Distinct (host, signature)s in order of first sighting; each event's index into them.
        let mut index: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
        let mut groups: Vec<UnhandledGroup> = Vec::new();
        let mut of_event = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let g = *index.entry((e.hostname.as_str(), e.signature.as_str())).or_insert_with(|| {
                let (counter, triggered) = self.keys.unhandled(&e.hostname, &e.signature);
                groups.push(UnhandledGroup { counter, triggered, first: i, events: 0, count_after: 0 });
                groups.len() - 1
            });
            groups[g].events += 1;
            of_event.push(g);
        }
        let mut count = redis::pipe();
        count.cmd("MGET").arg(groups.iter().map(|g| &g.triggered).collect::<Vec<_>>());
        for g in &groups {
            count.cmd("SET").arg(&g.counter).arg(0).arg("EX").arg(expiry_s).arg("NX").ignore();
            count.cmd("INCRBY").arg(&g.counter).arg(g.events);
        }
        let mut c = self.connection();
        let mut replies: Vec<redis::Value> =
            count.query_async(&mut c).await.map_err(redis_err("counting unhandled events"))?;
        let protocol = |e: redis::ParsingError| QueueError::Protocol(format!("unhandled counter reply: {e}"));
        if replies.len() != groups.len() + 1 {
            return Err(QueueError::Protocol(format!("{} replies to {} counters", replies.len(), groups.len())));
        }
        let counts = replies.split_off(1);
        let markers: Vec<Option<String>> = redis::from_redis_value(replies.swap_remove(0)).map_err(protocol)?;
        for (g, n) in groups.iter_mut().zip(counts) {
            g.count_after = redis::from_redis_value(n).map_err(protocol)?;
        }
        // Each event's count: the group's counts end at `count_after`, in batch order.
        let mut seen = vec![0u64; groups.len()];
        let mut fired = vec![false; events.len()];
        let mut claims: Vec<(usize, usize)> = Vec::new();
        let mut then = redis::pipe();
        let mut sampled = std::collections::HashSet::new();
        let mut suspended: Vec<usize> = Vec::new();
        for (i, (e, &g)) in events.iter().zip(&of_event).enumerate() {
            let group = &groups[g];
            if let Some(by) = &markers[g] {
                fired[i] = *by == e.event_id;
                if seen[g] == 0 {
                    suspended.push(g);
                    seen[g] = 1;
                }
                continue;
            }
            seen[g] += 1;
            let n = group.count_after.saturating_sub(group.events) + seen[g];
            // The first event of the group at or past the threshold claims the marker.
            if n >= threshold && !claims.iter().any(|(_, cg)| *cg == g) {
                claims.push((i, g));
            }
            let first = &events[group.first];
            if (n == 2 || n >= threshold) && !first.message.is_empty() && sampled.insert(g) {
                let key = format!("{}:sample", group.counter);
                then.cmd("SET").arg(&key).arg(&first.message).arg("EX").arg(expiry_s).arg("NX").ignore();
                then.cmd("EXPIRE").arg(&key).arg(expiry_s).ignore();
            }
        }
        if !suspended.is_empty() {
            // Counting is suspended while a marker lives: take the batch's counts back.
            then.cmd("EVAL").arg(scripts::UNCOUNT).arg(suspended.len());
            for &g in &suspended {
                then.arg(&groups[g].counter);
            }
            for &g in &suspended {
                then.arg(groups[g].events);
            }
            then.ignore();
        }
        for &(i, g) in &claims {
            then.cmd("SET").arg(&groups[g].triggered).arg(&events[i].event_id).arg("EX").arg(expiry_s).arg("NX");
            // Whoever wins deletes it; a loser's delete is the same delete.
            then.cmd("DEL").arg(&groups[g].counter).ignore();
        }
        if claims.is_empty() && sampled.is_empty() && suspended.is_empty() {
            return Ok(fired);
        }
        let won: Vec<Option<String>> =
            then.query_async(&mut c).await.map_err(redis_err("recording unhandled meta-alerts"))?;
        for (&(i, _), w) in claims.iter().zip(won) {
            fired[i] = w.is_some();
        }
        Ok(fired)
    }
}

/// One (hostname, signature) of a batch for [`RedisQueue::count_unhandled_native`].
struct UnhandledGroup {
    counter: String,
    triggered: String,
    /// The batch's first event of it (whose message is the example kept).
    first: usize,
    /// Its events in the batch.
    events: u64,
    /// Its counter after the batch's `INCRBY` (0 while suspended).
    count_after: u64,
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
        let mut c = self.connection();
        let expiries: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(self.keys.delivered_set())
            .arg(ids)
            .query_async(&mut c)
            .await
            .map_err(redis_err("reading delivered ids"))?;
        let now = chrono::Utc::now().timestamp_millis() as f64;
        Ok(expiries.into_iter().map(|e| e.filter(|until| *until > now).map(|until| until as i64)).collect())
    }

    async fn mark_delivered(&self, ids: &[String], ttl: Duration) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        // One sorted set scored by expiry instead of a key per id: the keyspace stays small,
        // which keeps SCAN (janitor, status) cheap. Expired members are pruned on every write.
        let now = chrono::Utc::now().timestamp_millis();
        let until = now + ttl.as_millis() as i64;
        let key = self.keys.delivered_set();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&key);
        for id in ids {
            zadd.arg(until).arg(id);
        }
        pipe.add_command(zadd).ignore();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl.as_millis() as u64 + 60_000).ignore();
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
        self.count_unhandled_native(events, threshold, expiry).await
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
