//! A role's Prometheus registry. Metric names are the original's (spec §10.1) so that the
//! original Grafana dashboards and alert rules keep working.
//!
//! Each role has its own registry, also when several roles share a process (`muttd run`): a
//! Prometheus scraping every role's port must see each series once, not once per port.

use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One role's registry; the role's parts register their metrics at start.
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Families registered with [`Metrics::shared`], by name.
    shared: Arc<Mutex<HashMap<String, Box<dyn std::any::Any + Send>>>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers metrics (called once per role at start-up).
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
    }

    /// The metric `name` of this registry, registered by the first part that asks for it: two
    /// parts of one process that count in the same family (the alerter's retention and the
    /// remediation's DLQ trimming in `muttd run`, both `mutt_retention_*{type}`) get the same
    /// one, and the name is in the output once. `None` if `name` holds a metric of another type.
    pub fn shared<M>(&self, name: &str, help: &str) -> Option<M>
    where
        M: prometheus_client::registry::Metric + Clone + Default,
    {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = shared.get(name) {
            return m.downcast_ref::<M>().cloned();
        }
        let m = M::default();
        self.register(|r| r.register(name, help, m.clone()));
        shared.insert(name.to_owned(), Box::new(m.clone()));
        Some(m)
    }

    /// The OpenMetrics text of every registered metric (what Prometheus asks for).
    pub fn encode(&self) -> String {
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// The Prometheus text format 0.0.4 of every registered metric: what the original served
    /// to a plain `curl`, and what `promtool check metrics` reads.
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }
}

/// Rewrites OpenMetrics text as text format 0.0.4: a counter family is named with its
/// `_total` (as its samples are), `info` becomes a gauge `<name>_info`, types 0.0.4 lacks are
/// `untyped`; `# UNIT`, `# EOF` and exemplars go.
fn openmetrics_to_text(om: &str) -> String {
    let types: HashMap<&str, &str> = om.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' ')).collect();
    let family = |name: &str| -> (String, &'static str) {
        match types.get(name).copied().unwrap_or("unknown") {
            "counter" => (format!("{name}_total"), "counter"),
            "info" => (format!("{name}_info"), "gauge"),
            "gauge" => (name.to_owned(), "gauge"),
            "histogram" => (name.to_owned(), "histogram"),
            "summary" => (name.to_owned(), "summary"),
            _ => (name.to_owned(), "untyped"),
        }
    };
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // 0.0.4 escapes only `\\` and `\n` in help text.
            out.push_str(&format!("# HELP {} {}\n", family(name).0, help.replace("\\\"", "\"")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_once(' ').map_or(rest, |(n, _)| n);
            let (name, kind) = family(name);
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF`: OpenMetrics only.
        } else {
            out.push_str(&line[..sample_end(line)]);
            out.push('\n');
        }
    }
    out
}

/// Where a sample line ends before an exemplar (` # {…}` after the value), ignoring `#`
/// inside quoted label values.
fn sample_end(line: &str) -> usize {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted && line[..i].ends_with(' ') => return i - 1,
            _ => {}
        }
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::metrics::info::Info;

    /// Two parts asking for the same shared family count in one, listed once.
    #[test]
    fn a_shared_family_is_registered_once() {
        let m = Metrics::new();
        let a: Family<Vec<(String, String)>, Counter> = m.shared("mutt_x", "X").unwrap();
        let b: Family<Vec<(String, String)>, Counter> = m.shared("mutt_x", "X").unwrap();
        a.get_or_create(&vec![("type".into(), "a".into())]).inc();
        b.get_or_create(&vec![("type".into(), "b".into())]).inc_by(2);
        let text = m.encode_text();
        assert_eq!(text.matches("# TYPE mutt_x_total counter").count(), 1, "{text}");
        assert!(text.contains("mutt_x_total{type=\"a\"} 1") && text.contains("mutt_x_total{type=\"b\"} 2"), "{text}");
        assert!(m.shared::<Gauge>("mutt_x", "X").is_none(), "another type under the name");
    }

    #[test]
    fn text_format_names_counter_families_with_total() {
        let m = Metrics::new();
        let requests: Family<Vec<(String, String)>, Counter> = Family::default();
        requests.get_or_create(&vec![("reason".into(), "a \"#\" b".into())]).inc_by(3);
        let depth = Gauge::<i64>::default();
        depth.set(7);
        let latency = Histogram::new([0.5]);
        latency.observe(0.1);
        m.register(|r| {
            r.register("mutt_x_requests", "Requests \"in\"", requests.clone());
            r.register("mutt_x_depth", "Depth", depth.clone());
            r.register_with_unit(
                "mutt_x_latency",
                "Latency",
                prometheus_client::registry::Unit::Seconds,
                latency.clone(),
            );
            r.register("mutt_x_build", "Build", Info::new(vec![("version".to_owned(), "1".to_owned())]));
        });
        let text = m.encode_text();
        let expected = "\
# HELP mutt_x_requests_total Requests \"in\".
# TYPE mutt_x_requests_total counter
mutt_x_requests_total{reason=\"a \\\"#\\\" b\"} 3
# HELP mutt_x_depth Depth.
# TYPE mutt_x_depth gauge
mutt_x_depth 7
# HELP mutt_x_latency_seconds Latency.
# TYPE mutt_x_latency_seconds histogram
mutt_x_latency_seconds_sum 0.1
mutt_x_latency_seconds_count 1
mutt_x_latency_seconds_bucket{le=\"0.5\"} 1
mutt_x_latency_seconds_bucket{le=\"+Inf\"} 1
# HELP mutt_x_build_info Build.
# TYPE mutt_x_build_info gauge
mutt_x_build_info{version=\"1\"} 1
";
        assert_eq!(text, expected, "from:\n{}", m.encode());
        assert!(m.encode().ends_with("# EOF\n"));
    }

    #[test]
    fn exemplars_are_cut_outside_quotes_only() {
        assert_eq!(sample_end("a_total 1 # {id=\"x\"} 1.0"), "a_total 1".len());
        let quoted = "a_total{l=\"x # y\"} 1";
        assert_eq!(sample_end(quoted), quoted.len());
    }
}
