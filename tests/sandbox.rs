//! The hostile suite: attack modules run through the real bootstrap under the Lambda Runtime API
//! emulator. Each attack is contained with a clear error, and the next invocation is healthy.
//!
//! Most attacks come from `tests/plugins/hostile` (a real `extism-pdk` plugin built for WASI, so
//! WASI and the PDK's HTTP calls are really attempted); the smallest are WAT.

mod common;

use std::time::{Duration, Instant};

use common::{Lambda, Store, Upstream, assert_error, event, hostile_wasm};
use serde_json::{Value, json};

/// A function running the hostile plugin's `entrypoint`, with WASI on and `extra` manifest lines.
fn hostile(store: &Store, name: &str, entrypoint: &str, extra: &str) {
    store.add_module(
        name,
        &hostile_wasm(),
        &format!("wasi: true\nentrypoint: {entrypoint}\n{extra}"),
    );
}

fn store_with_echo() -> Store {
    let store = Store::new();
    store.add_built("echo", "echo", "");
    store
}

/// The bootstrap still answers after an attack.
#[track_caller]
fn healthy(lambda: &Lambda) {
    assert_eq!(
        lambda.call("echo", json!("still here")),
        json!("still here"),
        "{}",
        lambda.logs()
    );
}

/// What the hostile `fetch` saw for `url`: (status, body, x-wasm-lambda-error header).
#[track_caller]
fn fetch(lambda: &Lambda, function: &str, url: &str) -> (u64, String, String) {
    let answer = lambda.call(function, json!({ "url": url }));
    let status = answer["status"]
        .as_u64()
        .unwrap_or_else(|| panic!("{function} {url}: {answer}\n{}", lambda.logs()));
    let body = answer["body"].as_str().unwrap_or_default().to_string();
    let kind = answer["headers"]["x-wasm-lambda-error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, body, kind)
}

#[track_caller]
fn refused(lambda: &Lambda, function: &str, url: &str, reason: &str) {
    let (status, body, kind) = fetch(lambda, function, url);
    assert_eq!(
        (status, kind.as_str()),
        (403, "egress-refused"),
        "{url}: {body}"
    );
    assert!(body.contains(reason), "{url}: {body} lacks {reason:?}");
}

#[test]
fn functions_see_no_environment_and_no_files_unless_granted() {
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("note.txt"), "granted").unwrap();
    let store = store_with_echo();
    hostile(&store, "env-reader", "read_env", "");
    hostile(&store, "file-reader", "read_file", "");
    hostile(
        &store,
        "granted-reader",
        "read_file",
        &format!(
            "allowed_paths: {{\"ro:{}\": /data}}\n",
            granted.path().display()
        ),
    );
    let lambda = Lambda::start(
        store.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_SESSION_TOKEN", "a-session-token"),
        ],
    );

    // The bootstrap's environment holds the role's credentials; the plugin sees none of it.
    assert_eq!(
        lambda.call("env-reader", Value::Null),
        json!({"vars": [], "secret": null})
    );
    healthy(&lambda);

    for path in ["/proc/self/environ", "/etc/passwd", "/data/note.txt"] {
        let answer = lambda.call("file-reader", json!(path));
        assert_eq!(answer["read"], false, "{path}: {answer}");
    }
    healthy(&lambda);

    // A granted directory is readable, and only it.
    assert_eq!(
        lambda.call("granted-reader", json!("/data/note.txt")),
        json!({"read": true, "text": "granted"})
    );
    let answer = lambda.call("granted-reader", json!("/proc/self/environ"));
    assert_eq!(answer["read"], false, "{answer}");
    healthy(&lambda);
}

#[test]
fn outbound_http_reaches_no_private_address_whatever_the_allow_list() {
    let upstream = Upstream::start();
    let store = store_with_echo();
    hostile(&store, "fetcher", "fetch", "allowed_hosts: [\"*\"]\n");
    hostile(
        &store,
        "picky",
        "fetch",
        "allowed_hosts: [api.example.com]\n",
    );
    let lambda = Lambda::start(store.path(), &[]);

    // The instance metadata service and the Lambda Runtime API, by address.
    refused(
        &lambda,
        "fetcher",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "169.254.169.254 is a link-local address (instance metadata)",
    );
    refused(
        &lambda,
        "fetcher",
        &format!(
            "http://127.0.0.1:{}/2018-06-01/runtime/invocation/next",
            lambda.port
        ),
        "is the Lambda Runtime API",
    );
    refused(
        &lambda,
        "fetcher",
        &upstream.url("/hello"),
        "is a loopback address",
    );
    refused(
        &lambda,
        "fetcher",
        &format!("http://[::1]:{}/hello", upstream.port),
        "::1 is a loopback address",
    );
    // A name is judged by what it resolves to, not by how it looks.
    refused(
        &lambda,
        "fetcher",
        &format!("http://localhost:{}/hello", upstream.port),
        "localhost resolves to 127.0.0.1 is a loopback address",
    );
    // A host the function did not list.
    refused(
        &lambda,
        "picky",
        "http://example.net/",
        "example.net is not in the function's allowed_hosts",
    );
    healthy(&lambda);
    lambda.wait_for_log(
        "outbound HTTP request refused function=fetcher request_id=",
        Duration::from_secs(5),
    );
}

#[test]
fn private_egress_for_local_development_still_guards_the_runtime_api() {
    let upstream = Upstream::start();
    let store = store_with_echo();
    hostile(&store, "fetcher", "fetch", "allowed_hosts: [\"*\"]\n");
    hostile(
        &store,
        "local-only",
        "fetch",
        "allowed_hosts: [localhost]\n",
    );
    hostile(
        &store,
        "small",
        "fetch",
        "allowed_hosts: [\"*\"]\nmax_http_response_bytes: 64KiB\n",
    );
    hostile(
        &store,
        "hasty",
        "fetch",
        "allowed_hosts: [\"*\"]\ntimeout: 1s\n",
    );
    let lambda = Lambda::start(store.path(), &[("ALLOW_PRIVATE_EGRESS", "true")]);
    lambda.wait_for_log("ALLOW_PRIVATE_EGRESS=true", Duration::from_secs(5));

    let answer = lambda.call("fetcher", json!({"url": upstream.url("/hello")}));
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], "hello from upstream");
    assert_eq!(answer["headers"]["x-upstream"], "yes");

    let runtime_api = format!(
        "http://127.0.0.1:{}/2018-06-01/runtime/invocation/next",
        lambda.port
    );
    refused(
        &lambda,
        "fetcher",
        &runtime_api,
        "is the Lambda Runtime API",
    );
    // Redirects are checked hop by hop: by address...
    refused(
        &lambda,
        "fetcher",
        &upstream.url(&format!("/redirect?to={runtime_api}")),
        "is the Lambda Runtime API",
    );
    // ... and by host.
    let from_localhost = |path: &str| format!("http://localhost:{}{path}", upstream.port);
    refused(
        &lambda,
        "local-only",
        &from_localhost(&format!("/redirect?to={}", upstream.url("/hello"))),
        "127.0.0.1 is not in the function's allowed_hosts",
    );
    let (status, body, _) = fetch(
        &lambda,
        "local-only",
        &from_localhost(&format!("/redirect?to={}", from_localhost("/hello"))),
    );
    assert_eq!((status, body.as_str()), (200, "hello from upstream"));

    // An endless response is cut at max_http_response_bytes.
    let (status, body, kind) = fetch(&lambda, "small", &upstream.url("/endless"));
    assert_eq!((status, kind.as_str()), (502, "egress-too-large"), "{body}");
    assert!(
        body.contains("max_http_response_bytes (65536 bytes)"),
        "{body}"
    );

    // A request never outlives the call: the plugin gets a 504 before its 1 s timeout.
    let started = Instant::now();
    let (status, _, kind) = fetch(&lambda, "hasty", &upstream.url("/slow"));
    assert_eq!((status, kind.as_str()), (504, "egress-timeout"));
    assert!(started.elapsed() < Duration::from_secs(3));
    healthy(&lambda);
}

/// Imports a host function that does not exist.
const UNKNOWN_IMPORT: &str = r#"(module
  (import "extism:host/env" "steal_credentials" (func $steal (result i64)))
  (func (export "handle") (result i32) (drop (call $steal)) (i32.const 0)))"#;

#[test]
fn runaway_functions_are_stopped_and_the_bootstrap_stays_small() {
    let store = store_with_echo();
    hostile(&store, "bomb", "memory_bomb", "memory_limit: 16MiB\n");
    hostile(&store, "spin", "spin", "timeout: 300ms\n");
    hostile(&store, "fueled", "spin", "fuel: 5000000\n");
    hostile(&store, "recurse", "recurse", "");
    hostile(&store, "huge", "huge_output", "memory_limit: 64MiB\n");
    store.add_wat("importer", UNKNOWN_IMPORT, "");
    let lambda = Lambda::start(store.path(), &[]);
    healthy(&lambda);
    let baseline = lambda.bootstrap_rss_kib();

    for _ in 0..5 {
        assert_error(
            &lambda.call("bomb", Value::Null),
            "FunctionTrap",
            "memory limit of 16 MiB exceeded",
        );
        healthy(&lambda);
    }
    // Each bomb filled 16 MiB; none of it stays with the bootstrap.
    let grown = lambda.bootstrap_rss_kib().saturating_sub(baseline);
    assert!(grown < 40 * 1024, "RSS grew by {grown} KiB after 5 bombs");

    assert_error(
        &lambda.call("spin", Value::Null),
        "FunctionTimeout",
        "limit 300 ms",
    );
    healthy(&lambda);
    assert_error(
        &lambda.call("fueled", Value::Null),
        "FunctionTrap",
        "ran out of fuel (5000000 instructions)",
    );
    healthy(&lambda);
    assert_error(
        &lambda.call("recurse", Value::Null),
        "FunctionTrap",
        "call stack exhausted",
    );
    healthy(&lambda);
    assert_error(
        &lambda.call("huge", json!("8000000")),
        "FunctionError",
        "output of 8000000 bytes is larger than the 6 MiB allowed",
    );
    assert_eq!(
        lambda.call("huge", json!("5")),
        json!("xxxxx"),
        "a small output passes"
    );
    assert_error(
        &lambda.call("importer", Value::Null),
        "ModuleInvalid",
        "steal_credentials",
    );
    healthy(&lambda);
}

#[test]
fn a_trap_in_the_middle_of_a_batch_fails_only_that_record() {
    let store = store_with_echo();
    hostile(
        &store,
        "crasher",
        "crash_on_boom",
        "hooks:\n  - {type: sqs, queue: jobs}\n",
    );
    let lambda = Lambda::start(store.path(), &[]);

    let mut batch = event("sqs-batch.json");
    batch["Records"][1]["body"] = json!("boom");
    assert_eq!(
        lambda.invoke(&batch),
        json!({"batchItemFailures": [{"itemIdentifier": "msg-2"}]})
    );
    lambda.wait_for_log("trapped", Duration::from_secs(5));
    assert_eq!(
        lambda.invoke(&event("sqs-batch.json")),
        json!({"batchItemFailures": []})
    );
    healthy(&lambda);
}

#[test]
fn extism_vars_never_cross_functions() {
    let store = store_with_echo();
    hostile(&store, "keeper", "swap_secret", "instance: reuse\n");
    hostile(&store, "snoop", "swap_secret", "instance: reuse\n");
    let lambda = Lambda::start(store.path(), &[]);

    assert_eq!(
        lambda.call("keeper", json!("s3cr3t")),
        json!({"previous": null})
    );
    // The same warm instance keeps its own var...
    assert_eq!(
        lambda.call("keeper", json!("s3cr3t-2")),
        json!({"previous": "s3cr3t"})
    );
    // ... which another function, from the very same module, never sees.
    assert_eq!(
        lambda.call("snoop", json!("mine")),
        json!({"previous": null})
    );
    healthy(&lambda);
}

/// The JSON log lines whose message contains `message`.
fn json_lines(logs: &str, message: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(message))
        })
        .collect()
}

#[test]
fn plugin_logs_reach_the_lambda_log_with_function_and_request_id() {
    let store = store_with_echo();
    hostile(
        &store,
        "logger",
        "log_request",
        "hooks:\n  - {type: http, method: GET, path: /log}\n",
    );

    // Text, as RUST_LOG sets it.
    let lambda = Lambda::start(store.path(), &[]);
    let (status, _, request_id) = lambda.url("GET", "/log", None);
    assert_eq!(status, 200);
    assert_eq!(request_id.len(), 36, "a request id: {request_id}");
    let expected = format!("handling \"GET\" \"/log\" function=logger request_id={request_id}");
    lambda.wait_for_log(&expected, Duration::from_secs(5));
    assert!(!lambda.logs().contains("plugin="), "no Extism instance ids");

    // JSON at WARN, as Lambda's advanced logging controls set it.
    let lambda = Lambda::start(
        store.path(),
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ("RUST_LOG", ""),
        ],
    );
    let (_, _, request_id) = lambda.url("GET", "/log", None);
    lambda.wait_for_log("still handling", Duration::from_secs(5));
    let logs = lambda.logs();
    let warned = json_lines(&logs, "still handling \"GET\" \"/log\"");
    assert_eq!(warned.len(), 1, "{logs}");
    assert_eq!(warned[0]["level"], "WARN");
    assert_eq!(warned[0]["fields"]["function"], "logger");
    assert_eq!(warned[0]["fields"]["request_id"], request_id.as_str());
    assert!(
        json_lines(&logs, "handling \"GET\"").len() == 1,
        "the info line is below WARN: {logs}"
    );
}

#[test]
fn one_call_timing_out_never_interrupts_another() {
    let store = store_with_echo();
    hostile(&store, "busy", "busy_for", "timeout: 2s\n");
    let lambda = Lambda::start(store.path(), &[("AWS_LAMBDA_MAX_CONCURRENCY", "2")]);
    healthy(&lambda);
    // Compiled before the race, so both calls start as soon as they arrive.
    assert_eq!(lambda.call("busy", json!("1")), json!("done after 1 ms"));

    let lambda = &lambda;
    let (looping, working) = std::thread::scope(|scope| {
        // Runs until its 2 s timeout stops it, at about t = 2 s.
        let looping = scope.spawn(move || {
            let answer = lambda.call("busy", json!("60000"));
            (answer, Instant::now())
        });
        // Runs from about t = 0.5 s to t = 2.3 s: across the other's timeout.
        std::thread::sleep(Duration::from_millis(500));
        let working = scope.spawn(move || {
            let answer = lambda.call("busy", json!("1800"));
            (answer, Instant::now())
        });
        (looping.join().unwrap(), working.join().unwrap())
    });
    assert_error(&looping.0, "FunctionTimeout", "limit 2000 ms");
    assert_eq!(working.0, json!("done after 1800 ms"), "{}", lambda.logs());
    assert!(
        looping.1 < working.1,
        "the timeout came while the other call was still running"
    );
    healthy(lambda);
}
