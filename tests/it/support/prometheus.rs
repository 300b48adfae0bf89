//! Scrapes read as Prometheus reads them: parsed by a Prometheus text-format parser that
//! refuses what Prometheus would (histograms that are not cumulative or lack +Inf,
//! families whose label sets differ, duplicate series), and compared series by series.

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::PrometheusValue;
use std::collections::BTreeMap;

/// A scrape's samples: `name{label="value",…}` (labels sorted) → value.
pub type Series = BTreeMap<String, f64>;

/// Every sample of a scrape, histograms flattened into their `_bucket`, `_sum` and
/// `_count` series. Panics unless the text parses as the Prometheus text format.
pub fn parse(text: &str) -> Series {
    let exposition = parse_prometheus(text)
        .unwrap_or_else(|err| panic!("not the Prometheus text format ({err:?}):\n{text}"));
    let mut series = Series::new();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let labelset = sample.get_labelset().expect("labels");
            let mut labels: Vec<(String, String)> = labelset
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let key = |suffix: &str, extra: Option<(&str, String)>| {
                let mut all = labels.clone();
                if let Some((k, v)) = extra {
                    all.push((k.to_string(), v));
                }
                let inner: Vec<String> = all.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                format!("{name}{suffix}{{{}}}", inner.join(","))
            };
            match &sample.value {
                PrometheusValue::Counter(c) => {
                    series.insert(key("", None), c.value.as_f64());
                }
                PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => {
                    series.insert(key("", None), n.as_f64());
                }
                PrometheusValue::Histogram(h) => {
                    for bucket in &h.buckets {
                        let le = if bucket.upper_bound.is_infinite() {
                            "+Inf".to_string()
                        } else {
                            bucket.upper_bound.to_string()
                        };
                        series.insert(key("_bucket", Some(("le", le))), bucket.count.as_f64());
                    }
                    let count = h.count.expect("histograms have _count") as f64;
                    series.insert(key("_count", None), count);
                    series.insert(
                        key("_sum", None),
                        h.sum.expect("histograms have _sum").as_f64(),
                    );
                    let inf = h
                        .buckets
                        .iter()
                        .find(|b| b.upper_bound.is_infinite())
                        .expect("+Inf");
                    assert_eq!(
                        inf.count.as_f64(),
                        count,
                        "{name}: +Inf bucket and _count differ"
                    );
                }
                PrometheusValue::Summary(_) => panic!("{name}: postd has no summaries"),
            }
        }
    }
    series
}

/// The name of the request counter of one route, method and status.
pub fn requests(route: &str, method: &str, status: u16) -> String {
    format!(
        "postd_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
    )
}

/// The series whose value changed from `before` to `after`, with the change, for the
/// series named `prefix…`.
pub fn moved(before: &Series, after: &Series, prefix: &str) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, value)| {
            (
                name.clone(),
                value - before.get(name).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, change)| *change != 0.0)
        .collect()
}
