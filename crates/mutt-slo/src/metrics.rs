//! muttd's own counters, without a Prometheus: each role's `/metrics` (the Prometheus text
//! format) read once and summed over the roles. Counters start at zero with their process, so
//! the values cover the time since the oldest scraped process started
//! (`process_start_time_seconds`), not a sliding window.

use crate::{REQUEST_TIMEOUT, shown};
use mutt_core::slo::Sample;

/// What the scrape found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scraped {
    pub urls: Vec<String>,
    /// How many URLs answered.
    pub reached: usize,
    pub samples: Vec<Sample>,
}

impl Scraped {
    /// Seconds since the oldest scraped process started, when one says.
    pub fn covered_seconds(&self) -> Option<f64> {
        let start = self
            .samples
            .iter()
            .filter(|s| s.name == "process_start_time_seconds" && s.value > 0.0)
            .map(|s| s.value)
            .reduce(f64::min)?;
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        Some((now - start).max(0.0))
    }
}

/// Reads every URL (an unreachable one is logged and skipped: the others still count).
pub async fn scrape(client: &reqwest::Client, urls: &[String]) -> Scraped {
    let mut out = Scraped { urls: urls.to_vec(), ..Scraped::default() };
    for url in urls {
        let text = async {
            let resp = client.get(url).timeout(REQUEST_TIMEOUT).send().await?.error_for_status()?;
            resp.text().await
        };
        match text.await {
            Ok(text) => {
                out.reached += 1;
                out.samples.extend(parse(&text));
            }
            Err(e) => tracing::warn!(url = %shown(url), error = %e.without_url(), "cannot read metrics"),
        }
    }
    out
}

/// The samples of a Prometheus (or OpenMetrics) text exposition; comments and lines that do
/// not parse are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (Vec::new(), &line[name_end..])
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// `k="v",k2="v2"}` → the pairs and what follows the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        let mut chars = s[eq + 1..].trim_start().strip_prefix('"')?.char_indices();
        let start = s.len() - chars.as_str().len();
        let mut value = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break start + i + 1,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_text_format() {
        let text = "# HELP mutt_ingest_requests Ingest requests\n\
            # TYPE mutt_ingest_requests counter\n\
            mutt_ingest_requests_total{status=\"success\",reason=\"\"} 37\n\
            mutt_ingest_requests_total{status=\"fail\",reason=\"a \\\"quoted\\\", odd}\"} 2\n\
            mutt_ingest_latency_seconds_bucket{le=\"+Inf\"} 39\n\
            process_start_time_seconds 1.7e9\n\
            broken{le=\"1\" 3\n\
            # EOF\n";
        let s = parse(text);
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(
            (s[0].name.as_str(), s[0].label("status"), s[0].value),
            ("mutt_ingest_requests_total", Some("success"), 37.0)
        );
        assert_eq!(s[1].label("reason"), Some("a \"quoted\", odd}"));
        assert_eq!(s[1].value, 2.0);
        assert_eq!(s[2].label("le"), Some("+Inf"));
        assert_eq!(s[3].value, 1.7e9);
    }
}
