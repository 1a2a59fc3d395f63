//! Service-level objectives (spec §10.5) and their arithmetic (spec §6.7): what each SLO
//! measures, its target and thresholds (overridable through the dynamic keys of
//! [`crate::config_catalogue`]), and how a measured value becomes a status, a burn rate and a
//! remaining error budget. No I/O: `mutt-slo` measures (Prometheus or muttd's own metrics)
//! and calls [`SloDefinition::evaluate`].
//!
//! Two of the original's definitions were broken (spec §10.5) and are fixed here: processing
//! success counts unhandled events as processed (`(handled + unhandled) / total`), and
//! cache-reload success is `1 − failures / attempts`.

use crate::config_catalogue;
use serde::Serialize;
use std::collections::BTreeMap;

/// The longest window a `slo_<name>_window_hours` key may ask for (a year).
pub const MAX_WINDOW_HOURS: u64 = 8760;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SloKind {
    /// A success ratio that should stay at or above `target` (0..=1).
    Availability { target: f64 },
    /// A p99 latency that should stay at or below `target_seconds`; the bounds turn it into a
    /// warning or a critical status.
    Latency { target_seconds: f64, upper_warning: f64, upper_critical: f64 },
}

/// What is measured, once for both sources: as PromQL for a Prometheus, and over scraped
/// samples for muttd's own metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure {
    /// The share of `counter` whose `label` is one of `good`.
    Share { counter: &'static str, label: &'static str, good: &'static [&'static str] },
    /// `1 − bad / total`; no attempts at all (the series there, at zero) is no failure: 1.
    Complement { bad: &'static str, total: &'static str },
    /// Quantile `q` of a histogram (its name without `_bucket`).
    Quantile { histogram: &'static str, q: f64 },
}

/// One sample of a scraped metric (`name{labels} value`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Measure {
    /// The PromQL over a range such as `5m` or `24h`.
    pub fn promql(&self, range: &str) -> String {
        match self {
            Measure::Share { counter, label, good } => format!(
                "sum(rate({counter}{{{label}=~\"{}\"}}[{range}])) / sum(rate({counter}[{range}]))",
                good.join("|")
            ),
            Measure::Complement { bad, total } => {
                // clamp_min: no attempts in the window gives 1 - 0/tiny = 1, not NaN (bad <= total).
                format!("1 - (sum(rate({bad}[{range}])) / clamp_min(sum(rate({total}[{range}])), 1e-9))")
            }
            Measure::Quantile { histogram, q } => {
                format!("histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{range}])))")
            }
        }
    }

    /// The value over counters read since they started (`None` when nothing was counted).
    pub fn from_samples(&self, samples: &[Sample]) -> Option<f64> {
        let sum = |name: &str, keep: &dyn Fn(&Sample) -> bool| -> f64 {
            samples.iter().filter(|s| s.name == name && keep(s)).map(|s| s.value).sum()
        };
        match self {
            Measure::Share { counter, label, good } => {
                let total = sum(counter, &|_| true);
                let ok = sum(counter, &|s| s.label(label).is_some_and(|v| good.contains(&v)));
                (total > 0.0).then(|| ok / total)
            }
            Measure::Complement { bad, total: total_name } => {
                if !samples.iter().any(|s| s.name == *total_name) {
                    return None;
                }
                let total = sum(total_name, &|_| true);
                Some(if total > 0.0 { 1.0 - sum(bad, &|_| true) / total } else { 1.0 })
            }
            Measure::Quantile { histogram, q } => {
                let name = format!("{histogram}_bucket");
                let mut buckets: BTreeMap<String, (f64, f64)> = BTreeMap::new();
                for s in samples.iter().filter(|s| s.name == name) {
                    let Some(le) = s.label("le") else { continue };
                    let Ok(bound) = le.parse::<f64>() else { continue };
                    buckets.entry(le.to_owned()).or_insert((bound, 0.0)).1 += s.value;
                }
                let mut buckets: Vec<(f64, f64)> = buckets.into_values().collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                histogram_quantile(*q, &buckets)
            }
        }
    }
}

/// Prometheus's `histogram_quantile` over cumulative `(upper bound, count)` buckets sorted by
/// bound, the last one `+Inf`: linear interpolation inside the bucket that holds the rank; a
/// rank in the `+Inf` bucket gives the highest finite bound.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let &(last_bound, total) = buckets.last()?;
    if !last_bound.is_infinite() || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let i = buckets.iter().position(|(_, count)| *count >= rank)?;
    if i == buckets.len() - 1 {
        return Some(if i == 0 { 0.0 } else { buckets[i - 1].0 });
    }
    let (start, before) = if i == 0 { (0.0, 0.0) } else { buckets[i - 1] };
    let (end, count) = buckets[i];
    if count == before {
        return Some(end);
    }
    Some(start + (end - start) * (rank - before) / (count - before))
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SloDefinition {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: SloKind,
    pub measure: Measure,
    pub window_hours: u64,
    pub burn_warning: f64,
    pub burn_critical: f64,
}

const fn availability(name: &'static str, description: &'static str, target: f64, measure: Measure) -> SloDefinition {
    SloDefinition {
        name,
        description,
        kind: SloKind::Availability { target },
        measure,
        window_hours: 24,
        burn_warning: 5.0,
        burn_critical: 10.0,
    }
}

const fn latency(
    name: &'static str,
    description: &'static str,
    target: f64,
    bounds: (f64, f64),
    h: &'static str,
) -> SloDefinition {
    SloDefinition {
        name,
        description,
        kind: SloKind::Latency { target_seconds: target, upper_warning: bounds.0, upper_critical: bounds.1 },
        measure: Measure::Quantile { histogram: h, q: 0.99 },
        window_hours: 24,
        burn_warning: 5.0,
        burn_critical: 10.0,
    }
}

/// The SLOs of spec §10.5, in the original's order.
pub const DEFINITIONS: &[SloDefinition] = &[
    availability(
        "ingestor_availability",
        "Ingestor request success rate",
        0.999,
        Measure::Share { counter: "mutt_ingest_requests_total", label: "status", good: &["success"] },
    ),
    latency("ingestor_latency_p99", "Ingestor p99 request latency", 0.5, (0.75, 1.0), "mutt_ingest_latency_seconds"),
    availability(
        "forwarder_availability",
        "Forwarder webhook request success rate",
        0.995,
        Measure::Share { counter: "mutt_moog_requests_total", label: "status", good: &["success"] },
    ),
    latency(
        "forwarder_latency_p99",
        "Forwarder p99 webhook request latency",
        2.0,
        (3.0, 5.0),
        "mutt_moog_request_latency_seconds",
    ),
    availability(
        "alerter_processing_success",
        "Alerter events processed (handled or unhandled) without error",
        0.999,
        Measure::Share {
            counter: "mutt_alerter_events_processed_total",
            label: "status",
            good: &["handled", "unhandled"],
        },
    ),
    availability(
        "alerter_cache_reload_success",
        "Alerter rule-cache reload success rate",
        0.99,
        Measure::Complement {
            bad: "mutt_alerter_cache_reload_failures_total",
            total: "mutt_alerter_cache_reload_total",
        },
    ),
];

/// The window and thresholds in force for one SLO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    pub window_hours: u64,
    pub burn_warning: f64,
    pub burn_critical: f64,
    pub upper_warning: f64,
    pub upper_critical: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SloStatus {
    Ok,
    Warning,
    Breaching,
    Critical,
    /// No value could be measured and the source does not treat that as a failure (muttd's
    /// own metrics before any traffic).
    Unknown,
}

/// One SLO in the report: the original's shape (spec §6.7, `slos[]`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloResult {
    pub slo_name: String,
    pub description: String,
    pub window_hours: u64,
    pub actual_value: Option<f64>,
    pub status: SloStatus,
    pub error_budget_remaining: Option<f64>,
    pub burn_rate: Option<f64>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_seconds: Option<f64>,
}

/// Why there is no value, and how to report it.
#[derive(Clone, Debug, PartialEq)]
pub struct NoData {
    pub status: SloStatus,
    pub message: String,
}

impl SloDefinition {
    pub fn find(name: &str) -> Option<&'static SloDefinition> {
        DEFINITIONS.iter().find(|d| d.name == name)
    }

    /// The dynamic keys this SLO reads (`slo_<name>_…`), from the catalogue.
    pub fn keys(&self) -> Vec<String> {
        let prefix = format!("slo_{}_", self.name);
        config_catalogue::catalogue().iter().filter(|s| s.key.starts_with(&prefix)).map(|s| s.key.to_string()).collect()
    }

    /// The definition's values with the dynamic ones `dynamic` holds over them; an unset or
    /// invalid value (per the catalogue) counts as unset.
    pub fn thresholds(&self, dynamic: impl Fn(&str) -> Option<String>) -> Thresholds {
        let read = |suffix: &str| -> Option<f64> {
            let key = format!("slo_{}_{suffix}", self.name);
            let setting = config_catalogue::lookup(&key)?;
            match setting.parse(&dynamic(&key)?).ok()? {
                config_catalogue::Value::Integer(v) => Some(v as f64),
                config_catalogue::Value::Float(v) => Some(v),
                _ => None,
            }
        };
        let (upper_warning, upper_critical) = match self.kind {
            SloKind::Latency { upper_warning, upper_critical, .. } => (upper_warning, upper_critical),
            SloKind::Availability { .. } => (0.0, 0.0),
        };
        Thresholds {
            window_hours: read("window_hours").map(|h| h as u64).unwrap_or(self.window_hours),
            burn_warning: read("burn_rate_warning").unwrap_or(self.burn_warning),
            burn_critical: read("burn_rate_critical").unwrap_or(self.burn_critical),
            upper_warning: read("upper_bound_warning").unwrap_or(upper_warning),
            upper_critical: read("upper_bound_critical").unwrap_or(upper_critical),
        }
    }

    /// The query over the window (the original replaced `[5m]` by `[<window>h]`).
    pub fn query(&self, t: &Thresholds) -> String {
        self.measure.promql(&format!("{}h", t.window_hours))
    }

    /// Status, burn rate and remaining budget of a measured value (spec §6.7 step 4).
    pub fn evaluate(&self, t: &Thresholds, actual: Result<f64, NoData>) -> SloResult {
        let (target, target_seconds) = match self.kind {
            SloKind::Availability { target } => (Some(target), None),
            SloKind::Latency { target_seconds, .. } => (None, Some(target_seconds)),
        };
        let mut result = SloResult {
            slo_name: self.name.to_owned(),
            description: self.description.to_owned(),
            window_hours: t.window_hours,
            actual_value: None,
            status: SloStatus::Unknown,
            error_budget_remaining: None,
            burn_rate: None,
            message: String::new(),
            target,
            target_seconds,
        };
        match actual {
            Err(NoData { status, message }) => {
                result.status = status;
                result.message = message;
            }
            Ok(actual) => {
                result.actual_value = Some(actual);
                let (status, budget, burn, message) = match self.kind {
                    SloKind::Availability { target } => availability_status(target, actual, t),
                    SloKind::Latency { target_seconds, .. } => latency_status(target_seconds, actual, t),
                };
                (result.status, result.error_budget_remaining, result.burn_rate, result.message) =
                    (status, budget, burn, message);
            }
        }
        result
    }
}

/// Spec §6.7: `burn = max(0, 1 − actual) / (1 − target)`, remaining budget
/// `(actual − target) / (1 − target)`. A 100 % target has no budget: the original reported
/// burn 0 and a full budget whatever happened; here any failure spends it (critical, budget
/// 0, burn rate undefined), and no failure keeps it whole.
fn availability_status(target: f64, actual: f64, t: &Thresholds) -> (SloStatus, Option<f64>, Option<f64>, String) {
    let budget = 1.0 - target;
    if budget <= 0.0 {
        return if actual >= 1.0 {
            (SloStatus::Ok, Some(1.0), Some(0.0), "Within target".into())
        } else {
            (SloStatus::Critical, Some(0.0), None, "Below a 100% target: no error budget".into())
        };
    }
    let burn = (1.0 - actual).max(0.0) / budget;
    let remaining = (actual - target) / budget;
    let (status, message) = if reached(burn, t.burn_critical) {
        (SloStatus::Critical, format!("Critical burn rate ({burn:.2}x target)"))
    } else if reached(burn, t.burn_warning) {
        (SloStatus::Warning, format!("High burn rate ({burn:.2}x target)"))
    } else if actual < target {
        (SloStatus::Breaching, "Below target".into())
    } else {
        (SloStatus::Ok, "Within target".into())
    };
    (status, Some(remaining), Some(burn), message)
}

/// `value >= bound`, allowing for float noise: a success ratio from Prometheus is a quotient of
/// two extrapolated rates, so exactly 10x can come out as 9.9999999999, which an operator sees
/// printed as "10.00x" and must not find classed below a threshold of 10.
fn reached(value: f64, bound: f64) -> bool {
    value >= bound - bound.abs().max(1.0) * 1e-9
}

fn latency_status(target: f64, actual: f64, t: &Thresholds) -> (SloStatus, Option<f64>, Option<f64>, String) {
    // A bound of 0 (unset) never triggers: the original compared against 0.0 and reported
    // every latency SLO without bounds as critical.
    let over = |bound: f64| bound > 0.0 && actual >= bound;
    let (status, message) = if over(t.upper_critical) {
        (SloStatus::Critical, format!("p99 {actual:.3}s at or above the critical bound {}s", t.upper_critical))
    } else if over(t.upper_warning) {
        (SloStatus::Warning, format!("p99 {actual:.3}s at or above the warning bound {}s", t.upper_warning))
    } else if actual > target {
        (SloStatus::Breaching, "Above target".into())
    } else {
        (SloStatus::Ok, "Within target".into())
    };
    (status, None, None, message)
}

/// A component of the documented shape (spec §6.7 [ADD]): `components.ingestor` and
/// `components.forwarder`, from the availability SLOs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Component {
    pub component: String,
    pub target: Option<f64>,
    pub availability: Option<f64>,
    pub error_budget_remaining: Option<f64>,
    pub burn_rate: Option<f64>,
    pub window_hours: u64,
    /// `ok`, `warn` or `critical` (no data counts as critical, as documented).
    pub state: &'static str,
}

/// The report: both shapes of spec §6.7 in one object, plus where the values came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloReport {
    pub timestamp: String,
    pub slos: Vec<SloResult>,
    pub window_hours: u64,
    pub components: BTreeMap<String, Component>,
    /// `prometheus` or `muttd-metrics`.
    pub source: String,
    /// For muttd's own metrics: the seconds they cover (since the process started), which
    /// can differ from the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_seconds: Option<f64>,
}

impl SloReport {
    /// Builds the documented shape from `slos` (the code shape).
    pub fn new(timestamp: String, source: &str, slos: Vec<SloResult>, measured_seconds: Option<f64>) -> Self {
        let mut components = BTreeMap::new();
        for (component, name) in [("ingestor", "ingestor_availability"), ("forwarder", "forwarder_availability")] {
            let Some(r) = slos.iter().find(|r| r.slo_name == name) else { continue };
            let state = match r.status {
                SloStatus::Critical | SloStatus::Unknown => "critical",
                SloStatus::Warning => "warn",
                SloStatus::Ok | SloStatus::Breaching => "ok",
            };
            components.insert(
                component.to_owned(),
                Component {
                    component: component.to_owned(),
                    target: r.target,
                    availability: r.actual_value,
                    error_budget_remaining: r.error_budget_remaining,
                    burn_rate: r.burn_rate,
                    window_hours: r.window_hours,
                    state,
                },
            );
        }
        let window_hours = slos.first().map(|r| r.window_hours).unwrap_or(24);
        Self { timestamp, slos, window_hours, components, source: source.to_owned(), measured_seconds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str) -> &'static SloDefinition {
        SloDefinition::find(name).unwrap()
    }

    fn defaults(d: &SloDefinition) -> Thresholds {
        d.thresholds(|_| None)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn availability_burn_rate_and_budget() {
        let d = def("ingestor_availability");
        let t = defaults(d);
        let r = d.evaluate(&t, Ok(0.9995));
        assert_eq!(r.status, SloStatus::Ok);
        assert!(close(r.burn_rate, 0.5) && close(r.error_budget_remaining, 0.5), "{r:?}");
        let r = d.evaluate(&t, Ok(0.998));
        assert_eq!(r.status, SloStatus::Breaching, "burn 2 < 5, below target: {r:?}");
        assert!(close(r.burn_rate, 2.0) && close(r.error_budget_remaining, -1.0));
        let r = d.evaluate(&t, Ok(0.995));
        assert_eq!((r.status, r.message.as_str()), (SloStatus::Warning, "High burn rate (5.00x target)"));
        let r = d.evaluate(&t, Ok(0.98));
        assert_eq!((r.status, r.message.as_str()), (SloStatus::Critical, "Critical burn rate (20.00x target)"));
        // A ratio a hair under 0.99, as a quotient of two Prometheus rates can be: burn shows
        // 10.00x and is critical (CI once saw it classed as warning).
        let r = d.evaluate(&t, Ok(0.99 + 1e-13));
        assert_eq!((r.status, r.message.as_str()), (SloStatus::Critical, "Critical burn rate (10.00x target)"));
        let r = d.evaluate(&t, Ok(0.9905));
        assert_eq!((r.status, r.message.as_str()), (SloStatus::Warning, "High burn rate (9.50x target)"));
        let r = d.evaluate(&t, Ok(1.0));
        assert!(close(r.burn_rate, 0.0) && close(r.error_budget_remaining, 1.0) && r.status == SloStatus::Ok);
        assert_eq!(r.target, Some(0.999));
        assert_eq!(r.target_seconds, None);
    }

    #[test]
    fn a_hundred_percent_target_has_no_budget() {
        let d = SloDefinition { kind: SloKind::Availability { target: 1.0 }, ..*def("forwarder_availability") };
        let t = defaults(&d);
        let r = d.evaluate(&t, Ok(1.0));
        assert_eq!((r.status, r.burn_rate, r.error_budget_remaining), (SloStatus::Ok, Some(0.0), Some(1.0)));
        let r = d.evaluate(&t, Ok(0.99999));
        assert_eq!((r.status, r.burn_rate, r.error_budget_remaining), (SloStatus::Critical, None, Some(0.0)));
        // Serialisable without a NaN or an infinity.
        assert!(serde_json::to_string(&r).unwrap().contains("\"burn_rate\":null"));
    }

    #[test]
    fn no_data_keeps_the_given_status_and_nulls() {
        let d = def("forwarder_availability");
        let no = NoData { status: SloStatus::Critical, message: "No data from Prometheus".into() };
        let r = d.evaluate(&defaults(d), Err(no));
        assert_eq!(r.status, SloStatus::Critical);
        assert_eq!((r.actual_value, r.burn_rate, r.error_budget_remaining), (None, None, None));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["message"], "No data from Prometheus");
        assert!(v["burn_rate"].is_null() && v["target"] == 0.995);
        let report = SloReport::new("t".into(), "prometheus", vec![r], None);
        assert_eq!(report.components["forwarder"].state, "critical");
        assert!(!report.components.contains_key("ingestor"));
    }

    #[test]
    fn latency_bounds() {
        let d = def("ingestor_latency_p99");
        let t = defaults(d);
        let status = |v| d.evaluate(&t, Ok(v)).status;
        assert_eq!(status(0.2), SloStatus::Ok);
        assert_eq!(status(0.6), SloStatus::Breaching);
        assert_eq!(status(0.75), SloStatus::Warning);
        assert_eq!(status(1.0), SloStatus::Critical);
        let r = d.evaluate(&t, Ok(0.2));
        assert_eq!((r.target, r.target_seconds, r.burn_rate), (None, Some(0.5), None));
    }

    #[test]
    fn dynamic_keys_override_and_bad_ones_fall_back() {
        let d = def("ingestor_availability");
        let t = d.thresholds(|k| match k {
            "slo_ingestor_availability_window_hours" => Some("6".into()),
            "slo_ingestor_availability_burn_rate_warning" => Some("2.5".into()),
            "slo_ingestor_availability_burn_rate_critical" => Some("-3".into()),
            _ => None,
        });
        assert_eq!((t.window_hours, t.burn_warning, t.burn_critical), (6, 2.5, 10.0));
        assert_eq!(
            d.query(&t),
            "sum(rate(mutt_ingest_requests_total{status=~\"success\"}[6h])) / sum(rate(mutt_ingest_requests_total[6h]))"
        );
        assert_eq!(d.evaluate(&t, Ok(0.997)).status, SloStatus::Warning, "burn 3 ≥ 2.5");
        assert_eq!(d.keys().len(), 3);
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
        }
    }

    #[test]
    fn measures_over_samples() {
        let s = [
            sample("mutt_alerter_events_processed_total", &[("status", "handled")], 90.0),
            sample("mutt_alerter_events_processed_total", &[("status", "unhandled")], 8.0),
            sample("mutt_alerter_events_processed_total", &[("status", "error")], 2.0),
            sample("mutt_alerter_cache_reload_total", &[], 10.0),
            sample("mutt_alerter_cache_reload_failures_total", &[], 1.0),
        ];
        assert!(close(def("alerter_processing_success").measure.from_samples(&s), 0.98));
        assert!(close(def("alerter_cache_reload_success").measure.from_samples(&s), 0.9));
        assert_eq!(def("ingestor_availability").measure.from_samples(&s), None, "nothing counted");
        let zero = [sample("mutt_alerter_cache_reload_total", &[], 0.0)];
        assert_eq!(
            def("alerter_cache_reload_success").measure.from_samples(&zero),
            Some(1.0),
            "no attempt, no failure"
        );
        assert_eq!(def("alerter_cache_reload_success").measure.from_samples(&[]), None, "no alerter scraped");
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let h = "mutt_ingest_latency_seconds_bucket";
        let s = [
            sample(h, &[("le", "0.1")], 50.0),
            sample(h, &[("le", "0.5")], 90.0),
            sample(h, &[("le", "1.0")], 100.0),
            sample(h, &[("le", "+Inf")], 100.0),
        ];
        let m = Measure::Quantile { histogram: "mutt_ingest_latency_seconds", q: 0.99 };
        assert!(close(m.from_samples(&s), 0.95), "{:?}", m.from_samples(&s));
        let m50 = Measure::Quantile { histogram: "mutt_ingest_latency_seconds", q: 0.5 };
        assert!(close(m50.from_samples(&s), 0.1));
        assert_eq!(histogram_quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None, "no observations");
        assert_eq!(histogram_quantile(0.99, &[(0.1, 1.0), (f64::INFINITY, 10.0)]), Some(0.1), "rank in +Inf");
        assert_eq!(histogram_quantile(0.99, &[(0.1, 1.0)]), None, "no +Inf bucket");
    }
}
