//! Each invocation writes one CloudWatch Embedded Metric Format line per function it called,
//! through the real bootstrap under the Lambda Runtime API emulator.

mod common;

use std::time::Duration;

use common::{Lambda, Store, eventually};
use serde_json::{Value, json};

/// The EMF lines the bootstrap wrote so far.
fn emf(lambda: &Lambda) -> Vec<Value> {
    lambda
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect()
}

/// Waits for the `n`th EMF line and returns it.
fn nth(lambda: &Lambda, n: usize) -> Value {
    eventually(Duration::from_secs(5), "the metrics line", || {
        emf(lambda).len() >= n
    });
    emf(lambda)[n - 1].clone()
}

#[test]
fn every_invocation_writes_its_metrics_line() {
    let store = Store::new();
    store.add_built("echo", "echo", "");
    store.add_built("fresh", "echo", "instance: fresh\n");
    store.add_built(
        "inspect",
        "echo",
        "hooks:\n  - {type: http, path: \"/inspect/{rest+}\"}\n",
    );
    let lambda = Lambda::start(store.path(), &[]);

    assert_eq!(lambda.call("echo", json!(1)), json!(1));
    let first = nth(&lambda, 1);
    assert_eq!(first["function"], "echo");
    assert_eq!(first["trigger"], "direct");
    assert_eq!(first["cold"], true);
    assert_eq!(first["cache"], "miss");
    assert_eq!(first["outcome"], "ok");
    assert!(first["compile_ms"].as_f64().unwrap() > 0.0, "{first}");
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "wasm-lambda"
    );
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    // A function that made no host calls.
    assert_eq!(
        (first["host_calls"].clone(), first["host_ms"].clone()),
        (json!(0), json!(0.0))
    );
    assert!(first.get("host").is_none(), "{first}");

    assert_eq!(lambda.call("echo", json!(2)), json!(2));
    let warm = nth(&lambda, 2);
    assert_eq!(
        (warm["cold"].clone(), warm["cache"].clone()),
        (json!(false), json!("hit"))
    );
    assert_eq!(warm["compile_ms"], 0.0);

    // With `instance: fresh` every call gets a new instance, made after the previous call
    // answered: after the first (which compiled the function and instantiated its module in
    // the call, and says so), none is made on the critical path.
    for n in 0..3 {
        assert_eq!(lambda.call("fresh", json!(n)), json!(n));
    }
    let first = nth(&lambda, 3);
    assert_eq!(first["cache"], "miss");
    assert!(first["instantiate_ms"].as_f64().unwrap() > 0.0, "{first}");
    for line in (4..=5).map(|n| nth(&lambda, n)) {
        assert_eq!(line["function"], "fresh");
        assert_eq!(line["instantiate_ms"], 0.0, "{line}");
    }

    assert_eq!(
        lambda.call("nobody", json!(null))["errorType"],
        "FunctionNotFound"
    );
    let failed = nth(&lambda, 6);
    assert_eq!(
        (failed["function"].clone(), failed["errors"].clone()),
        (json!("nobody"), json!(1))
    );
    assert_eq!(failed["outcome"], "FunctionNotFound");

    // An HTTP call: its request id and X-Ray trace id reach the function and the line.
    let (status, _, body) = lambda.url("GET", "/inspect/me", None);
    assert_eq!(status, 200);
    let request: Value = serde_json::from_str(&body).unwrap();
    let trace_id = request["context"]["trace_id"].as_str().unwrap();
    assert!(trace_id.starts_with("Root=1-"), "{trace_id}");
    let http = nth(&lambda, 7);
    assert_eq!(http["trigger"], "http");
    assert_eq!(http["trace_id"], trace_id);
    assert_eq!(http["request_id"], request["context"]["request_id"]);
}
