//! Metrics: one CloudWatch Embedded Metric Format (EMF) line per invocation and function, written
//! to stdout where Lambda's log picks it up and CloudWatch turns it into metrics.
//!
//! ```json
//! {"_aws": {"Timestamp": 1764000000000, "CloudWatchMetrics": [{"Namespace": "wasm-lambda",
//!   "Dimensions": [["function"], ["function", "trigger"]], "Metrics": [...]}]},
//!  "function": "hello", "trigger": "http", "cold": true, "cache": "miss", "artifact": "compiled",
//!  "outcome": "ok",
//!  "fetch_ms": 2.1, "compile_ms": 61.0, "instantiate_ms": 0.0, "call_ms": 0.02,
//!  "host_calls": 2, "host_ms": 3.4, "host": {"kv": {"calls": 1, "ms": 1.2}, "s3": {...}},
//!  "calls": 1, "errors": 0, "request_id": "...", "trace_id": "..."}
//! ```
//!
//! A batch's calls to one function make one line, their times summed.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::capabilities::{FAMILIES, HostUsage};
use crate::error::Error;
use crate::invoke::Loaded;

/// The CloudWatch namespace of the metrics.
pub const NAMESPACE: &str = "wasm-lambda";

/// What one call of a function cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub loaded: Loaded,
    /// Waiting for an instance on the call's critical path (none when one was ready).
    pub instantiate: Duration,
    /// Running the function (its host calls included).
    pub call: Duration,
    /// Its host calls, per capability.
    pub host: HostUsage,
}

/// One function's share of an invocation.
#[derive(Debug, Default)]
struct Totals {
    usage: Usage,
    miss: bool,
    /// On a miss: whether code was compiled or a compiled artifact loaded.
    compiled_code: Option<bool>,
    calls: u32,
    errors: u32,
    /// The first failure's `errorType`.
    outcome: Option<&'static str>,
}

/// The metrics of one invocation.
#[derive(Debug)]
pub struct Meter {
    trigger: &'static str,
    cold: bool,
    request_id: String,
    trace_id: Option<String>,
    /// Each function called, by name, in name order: usually one, so a vector (a map's node
    /// for one entry is a 3 KB allocation per invocation).
    functions: Mutex<Vec<(String, Totals)>>,
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

impl Meter {
    pub fn new(
        trigger: &'static str,
        cold: bool,
        request_id: &str,
        trace_id: Option<&str>,
    ) -> Meter {
        Meter {
            trigger,
            cold,
            request_id: request_id.to_string(),
            trace_id: trace_id.map(str::to_string),
            functions: Mutex::new(Vec::new()),
        }
    }

    /// Records a call of `function`.
    pub fn record(&self, function: &str, usage: Usage, failure: Option<&Error>) {
        let mut functions = self.functions.lock().expect("meter lock");
        let at = match functions.binary_search_by(|(name, _)| name.as_str().cmp(function)) {
            Ok(at) => at,
            Err(at) => {
                // Room for exactly the one function an invocation usually calls: a vector's
                // first growth (four entries) would be past glibc's per-thread cache too.
                functions.reserve_exact(1);
                functions.insert(at, (function.to_string(), Totals::default()));
                at
            }
        };
        let totals = &mut functions[at].1;
        let sum = &mut totals.usage;
        sum.loaded.fetch += usage.loaded.fetch;
        sum.loaded.compile += usage.loaded.compile;
        sum.instantiate += usage.instantiate;
        sum.call += usage.call;
        for (sum, call) in sum.host.iter_mut().zip(usage.host) {
            sum.0 += call.0;
            sum.1 += call.1;
        }
        totals.miss |= usage.loaded.miss;
        totals.compiled_code = totals.compiled_code.or(usage.loaded.compiled_code);
        totals.calls += 1;
        if let Some(error) = failure {
            totals.errors += 1;
            totals.outcome.get_or_insert(error.error_type());
        }
    }

    /// The EMF lines, serialized into `out`, each ending in a newline: one per function called.
    /// Written to stdout with one `write` (no formatting on the way).
    pub fn write_lines(&self, out: &mut Vec<u8>) {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis() as u64)
            .unwrap_or_default();
        let functions = self.functions.lock().expect("meter lock");
        for (function, totals) in functions.iter() {
            let usage = totals.usage;
            let line = Line {
                function,
                trigger: self.trigger,
                cold: self.cold,
                cache: if totals.miss { "miss" } else { "hit" },
                artifact: totals
                    .compiled_code
                    .map(|compiled| if compiled { "compiled" } else { "loaded" }),
                outcome: totals.outcome.unwrap_or("ok"),
                fetch_ms: ms(usage.loaded.fetch),
                compile_ms: ms(usage.loaded.compile),
                instantiate_ms: ms(usage.instantiate),
                call_ms: ms(usage.call),
                host_calls: usage.host.iter().map(|(calls, _)| calls).sum(),
                host_ms: ms(usage.host.iter().map(|(_, took)| *took).sum()),
                host: FAMILIES
                    .iter()
                    .zip(usage.host)
                    .filter(|(_, (calls, _))| *calls > 0)
                    .map(|(family, (calls, took))| {
                        (
                            *family,
                            HostLine {
                                calls,
                                ms: ms(took),
                            },
                        )
                    })
                    .collect(),
                calls: totals.calls,
                errors: totals.errors,
                request_id: &self.request_id,
                trace_id: self.trace_id.as_deref(),
            };
            // The directive first, its metric definitions as serialized once, then the line's
            // own fields (serializing borrowed strings and numbers into memory cannot fail).
            out.extend_from_slice(b"{\"_aws\":{\"Timestamp\":");
            // Writing into memory cannot fail.
            let _ = write!(out, "{timestamp}");
            out.extend_from_slice(b",\"CloudWatchMetrics\":");
            out.extend_from_slice(&METRICS_JSON);
            out.extend_from_slice(b"},");
            let fields = out.len();
            serde_json::to_writer(&mut *out, &line).expect("a metrics line serializes");
            out.remove(fields); // the fields' own `{`
            out.push(b'\n');
        }
    }
}

/// One EMF line's fields after its `_aws` directive: the dimensions, properties and metric
/// values.
#[derive(Serialize)]
struct Line<'a> {
    function: &'a str,
    trigger: &'a str,
    cold: bool,
    cache: &'static str,
    artifact: Option<&'static str>,
    outcome: &'static str,
    fetch_ms: f64,
    compile_ms: f64,
    instantiate_ms: f64,
    call_ms: f64,
    /// Host calls (capabilities) made, and the time they took, in all and per capability.
    host_calls: u32,
    host_ms: f64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    host: BTreeMap<&'static str, HostLine>,
    calls: u32,
    errors: u32,
    request_id: &'a str,
    trace_id: Option<&'a str>,
}

/// One capability's host calls in a metrics line.
#[derive(Serialize)]
struct HostLine {
    calls: u32,
    ms: f64,
}

/// `[METRICS]` as JSON, serialized once: every line's directive carries it as it is.
static METRICS_JSON: LazyLock<Vec<u8>> =
    LazyLock::new(|| serde_json::to_vec(&[METRICS]).expect("the metric directive serializes"));

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricSet {
    namespace: &'static str,
    dimensions: &'static [&'static [&'static str]],
    metrics: &'static [Metric],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    name: &'static str,
    unit: &'static str,
}

/// What CloudWatch makes metrics of in each line.
const METRICS: MetricSet = MetricSet {
    namespace: NAMESPACE,
    dimensions: &[&["function"], &["function", "trigger"]],
    metrics: &[
        Metric {
            name: "fetch_ms",
            unit: "Milliseconds",
        },
        Metric {
            name: "compile_ms",
            unit: "Milliseconds",
        },
        Metric {
            name: "instantiate_ms",
            unit: "Milliseconds",
        },
        Metric {
            name: "call_ms",
            unit: "Milliseconds",
        },
        Metric {
            name: "host_calls",
            unit: "Count",
        },
        Metric {
            name: "host_ms",
            unit: "Milliseconds",
        },
        Metric {
            name: "calls",
            unit: "Count",
        },
        Metric {
            name: "errors",
            unit: "Count",
        },
    ],
};

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn a_batch_sums_its_calls_per_function() {
        let meter = Meter::new("sqs", false, "r-1", Some("Root=1-abc"));
        let usage = Usage {
            loaded: Loaded::default(),
            instantiate: Duration::ZERO,
            call: Duration::from_micros(1500),
            host: [
                (1, Duration::from_micros(500)),
                (0, Duration::ZERO),
                (0, Duration::ZERO),
                (0, Duration::ZERO),
                (0, Duration::ZERO),
                (0, Duration::ZERO),
            ],
        };
        meter.record("worker", usage, None);
        let failure = Error::FunctionError {
            function: "worker".into(),
            reason: "poison".into(),
        };
        meter.record("worker", usage, Some(&failure));
        let mut out = Vec::new();
        meter.write_lines(&mut out);
        let lines: Vec<&[u8]> = out.split_inclusive(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 1);
        let line: Value = serde_json::from_slice(lines[0]).unwrap();
        assert_eq!(line["function"], "worker");
        assert_eq!(line["calls"], 2);
        assert_eq!(line["errors"], 1);
        assert_eq!(line["outcome"], "FunctionError");
        assert_eq!(line["call_ms"], 3.0);
        assert_eq!(line["host_calls"], 2);
        assert_eq!(
            line["host"],
            serde_json::json!({"s3": {"calls": 2, "ms": 1.0}})
        );
        assert_eq!(line["cache"], "hit");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
    }
}
