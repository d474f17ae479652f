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
    // However the address is spelled: IPv4 written as IPv6, the wildcard, the other loopback
    // addresses, the numeric forms the URL parser reads, a name.
    let port = lambda.port;
    for host in [
        "[::ffff:127.0.0.1]".to_string(),
        "[::ffff:7f00:1]".to_string(),
        "[::1]".to_string(),
        "[::]".to_string(),
        "0.0.0.0".to_string(),
        "127.0.0.2".to_string(),
        "127.1".to_string(),
        "0x7f000001".to_string(),
        "2130706433".to_string(),
        "017700000001".to_string(),
        "localhost".to_string(),
    ] {
        refused(
            &lambda,
            "fetcher",
            &format!("http://{host}:{port}/2018-06-01/runtime/invocation/next"),
            "is the Lambda Runtime API",
        );
    }
    // Redirects are checked hop by hop: by address...
    for target in [
        runtime_api.clone(),
        format!("http://[::ffff:127.0.0.1]:{port}/2018-06-01/runtime/invocation/next"),
        format!("http://0.0.0.0:{port}/2018-06-01/runtime/invocation/next"),
    ] {
        refused(
            &lambda,
            "fetcher",
            &upstream.url(&format!("/redirect?to={target}")),
            "is the Lambda Runtime API",
        );
    }
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

    // A request never outlives the call: the plugin gets a 504 before its 1 s timeout (its
    // first call, which loads it, before).
    assert_eq!(fetch(&lambda, "hasty", &upstream.url("/hello")).0, 200);
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
fn a_panic_reports_its_message_a_missing_entrypoint_the_exports_and_wasi_the_flag() {
    let store = store_with_echo();
    hostile(&store, "panicker", "crash_on_boom", "");
    hostile(&store, "bare", "crash_bare", "");
    hostile(&store, "misnamed", "no_such_export", "");
    store.add_module("no-wasi", &hostile_wasm(), "entrypoint: crash_bare\n");
    let lambda = Lambda::start(store.path(), &[]);

    // With the SDK's hook: the message and where, in the error and the log.
    let answer = lambda.call("panicker", json!("boom"));
    assert_error(
        &answer,
        "FunctionTrap",
        "function `panicker` trapped: panicked at src/lib.rs:",
    );
    let message = answer["errorMessage"].as_str().unwrap();
    assert!(message.ends_with(": went boom"), "{answer}");
    assert!(
        !message.contains('\n') && !message.contains("backtrace"),
        "one line, no wasm backtrace: {message}"
    );
    lambda.wait_for_log("went boom", Duration::from_secs(5));
    // Without it: the trap, and what it probably was.
    assert_error(
        &lambda.call("bare", Value::Null),
        "FunctionTrap",
        "a Rust panic, if the function is in Rust: link wasm-lambda-sdk",
    );
    let missing = lambda.call("misnamed", Value::Null);
    assert_error(
        &missing,
        "ModuleInvalid",
        "entrypoint `no_such_export` is not an exported function of the module (it exports ",
    );
    assert!(
        missing["errorMessage"]
            .as_str()
            .unwrap()
            .contains("`crash_on_boom`"),
        "{missing}"
    );
    assert_error(
        &lambda.call("no-wasi", Value::Null),
        "ModuleInvalid",
        "imports WASI (`wasi_snapshot_preview1::",
    );
    assert!(
        lambda.call("no-wasi", Value::Null)["errorMessage"]
            .as_str()
            .unwrap()
            .contains("but the manifest has `wasi: false`"),
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
    // Compiled before the race, with an engine ready for each of the two calls, so both start
    // as soon as they arrive.
    assert_eq!(lambda.call("busy", json!("1")), json!("done after 1 ms"));
    let lambda = &lambda;
    std::thread::scope(|scope| {
        let first = scope.spawn(|| lambda.call("busy", json!("500")));
        let second = scope.spawn(|| lambda.call("busy", json!("500")));
        assert_eq!(first.join().unwrap(), json!("done after 500 ms"));
        assert_eq!(second.join().unwrap(), json!("done after 500 ms"));
    });

    let (looping, working) = std::thread::scope(|scope| {
        // Runs until its 2 s timeout stops it, at about t = 2 s.
        let looping = scope.spawn(move || {
            let answer = lambda.call("busy", json!("60000"));
            (answer, Instant::now())
        });
        // Runs from about t = 1 s to t = 2.5 s: across the other's timeout.
        std::thread::sleep(Duration::from_millis(1000));
        let working = scope.spawn(move || {
            let answer = lambda.call("busy", json!("1500"));
            (answer, Instant::now())
        });
        (looping.join().unwrap(), working.join().unwrap())
    });
    assert_error(&looping.0, "FunctionTimeout", "limit 2000 ms");
    assert_eq!(working.0, json!("done after 1500 ms"), "{}", lambda.logs());
    assert!(
        looping.1 < working.1,
        "the timeout came while the other call was still running"
    );
    healthy(lambda);
}

#[test]
fn overlapping_calls_are_answered_when_the_kept_module_is_gone() {
    let store = store_with_echo();
    hostile(&store, "busy", "busy_for", "timeout: 20s\n");
    let tmp = tempfile::tempdir().unwrap();
    let lambda = Lambda::start(
        store.path(),
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "2"),
            ("TMPDIR", tmp.path().to_str().unwrap()),
        ],
    );
    assert_eq!(lambda.call("busy", json!("1")), json!("done after 1 ms"));
    // A loaded function's module is kept on disk by digest, not in memory, for the engine an
    // overlapping call needs: taken away, the second call waits for the first one's engine.
    let kept: Vec<_> = std::fs::read_dir(tmp.path().join("wasm-lambda/published"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    std::fs::remove_file(&kept[0]).unwrap();
    let lambda = &lambda;
    std::thread::scope(|scope| {
        let first = scope.spawn(|| lambda.call("busy", json!("1500")));
        let second = scope.spawn(|| lambda.call("busy", json!("1500")));
        assert_eq!(first.join().unwrap(), json!("done after 1500 ms"));
        assert_eq!(second.join().unwrap(), json!("done after 1500 ms"));
    });
    lambda.wait_for_log("kept copy is gone", Duration::from_secs(5));
    healthy(lambda);
}

/// A snapshot of every file under `dir`: path, contents and modification time.
fn tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let metadata = entry.metadata().unwrap();
        let path = entry.path();
        if metadata.is_dir() {
            files.push((
                path.display().to_string(),
                Vec::new(),
                metadata.modified().unwrap(),
            ));
            files.extend(tree(&path));
        } else {
            files.push((
                path.display().to_string(),
                std::fs::read(&path).unwrap(),
                metadata.modified().unwrap(),
            ));
        }
    }
    files.sort();
    files
}

#[test]
fn a_read_only_grant_refuses_every_change_however_it_is_asked() {
    let ro = tempfile::tempdir().unwrap();
    let rw = tempfile::tempdir().unwrap();
    std::fs::write(
        ro.path().join("precious.txt"),
        "thirty bytes of precious data",
    )
    .unwrap();
    std::fs::create_dir(ro.path().join("subdir")).unwrap();
    std::fs::write(ro.path().join("subdir/inner.txt"), "inner").unwrap();
    std::fs::write(rw.path().join("src.txt"), "from the writable grant").unwrap();
    let before = tree(ro.path());
    let store = store_with_echo();
    hostile(
        &store,
        "fs",
        "fs_attack",
        &format!(
            "allowed_paths: {{\"ro:{}\": /ro, \"{}\": /rw}}\n",
            ro.path().display(),
            rw.path().display()
        ),
    );
    let lambda = Lambda::start(store.path(), &[]);
    let attack = |op: &str, path: &str| {
        lambda.call(
            "fs",
            json!({"dir": "/ro", "op": op, "path": path, "from": "/rw"}),
        )
    };

    // The attacks work where they are allowed: reading the read-only grant, writing the other.
    assert_eq!(attack("read", "precious.txt"), json!({"ok": true}));
    assert_eq!(
        lambda.call(
            "fs",
            json!({"dir": "/rw", "op": "create", "path": "new.txt"})
        ),
        json!({"ok": true})
    );
    assert!(rw.path().join("new.txt").exists());

    for (op, path) in [
        ("create_truncate", "precious.txt"),
        ("truncate", "precious.txt"),
        ("create", "created.txt"),
        ("create", "precious.txt"),
        ("create_exclusive", "created.txt"),
        ("open_write", "precious.txt"),
        ("open_append", "precious.txt"),
        ("write_read_only", "precious.txt"),
        ("set_size", "precious.txt"),
        ("allocate", "precious.txt"),
        ("set_times", "precious.txt"),
        ("set_flags", "precious.txt"),
        ("path_set_times", "precious.txt"),
        ("mkdir", "made"),
        ("rmdir", "subdir"),
        ("unlink", "precious.txt"),
        ("rename", "precious.txt"),
        ("symlink", "precious.txt"),
        ("link", "precious.txt"),
        ("create_in_subdir", "subdir"),
        ("create_truncate", "subdir/inner.txt"),
        ("create_truncate", "./subdir/../precious.txt"),
        ("rename_into", "precious.txt"),
        ("rename_into", "planted.txt"),
        ("link_into", "planted.txt"),
    ] {
        let answer = attack(op, path);
        assert_eq!(answer["ok"], false, "{op} {path}: {answer}");
        assert_eq!(
            tree(ro.path()),
            before,
            "{op} {path} changed the read-only grant"
        );
    }
    assert!(rw.path().join("src.txt").exists(), "the source stayed");
    healthy(&lambda);
}

#[test]
fn no_grant_reaches_the_runtimes_compile_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap().to_string();
    let cache = tmp.path().join("wasm-lambda");
    let link = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&cache, link.path().join("cache")).unwrap();
    let store = store_with_echo();
    for (name, grant) in [
        ("whole-tmp", format!("{tmp_path}: /tmp")),
        ("whole-tmp-ro", format!("\"ro:{tmp_path}\": /tmp")),
        ("the-cache", format!("{tmp_path}/wasm-lambda: /c")),
        ("inside", format!("{tmp_path}/wasm-lambda/wasmtime: /c")),
        // Every loaded function's module is kept here, read back for a concurrent call's engine.
        (
            "kept-modules",
            format!("{tmp_path}/wasm-lambda/published: /c"),
        ),
        (
            "kept-modules-ro",
            format!("\"ro:{tmp_path}/wasm-lambda/published\": /c"),
        ),
        ("dotted", format!("{tmp_path}/scratch/../wasm-lambda: /c")),
        ("trailing", format!("{tmp_path}/wasm-lambda/: /c")),
        ("linked", format!("{}/cache: /c", link.path().display())),
        ("root", "/: /all".to_string()),
    ] {
        hostile(
            &store,
            name,
            "fs_attack",
            &format!("allowed_paths: {{{grant}}}\n"),
        );
    }
    // The kernel's views of the process (its environment holds the role's credentials), and
    // grants that could change what they name between the check and the open.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(elsewhere.path().join("inner")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), link.path().join("elsewhere")).unwrap();
    let elsewhere_path = elsewhere.path().display().to_string();
    for (name, grant) in [
        ("proc", "\"ro:/proc\": /p".to_string()),
        ("proc-self", "/proc/self: /p".to_string()),
        ("sys", "\"ro:/sys\": /p".to_string()),
        ("dev", "/dev: /p".to_string()),
        (
            "via-link",
            format!("{}/elsewhere: /p", link.path().display()),
        ),
        (
            "nested",
            format!("{elsewhere_path}: /p, {elsewhere_path}/inner: /q"),
        ),
    ] {
        hostile(
            &store,
            name,
            "fs_attack",
            &format!("allowed_paths: {{{grant}}}\n"),
        );
    }
    hostile(
        &store,
        "scratch",
        "fs_attack",
        &format!("allowed_paths: {{{tmp_path}/scratch: /tmp}}\n"),
    );
    let lambda = Lambda::start(store.path(), &[("TMPDIR", &tmp_path)]);
    healthy(&lambda);
    assert!(
        cache.join("wasmtime").is_dir(),
        "the cache is where grants point"
    );
    for (name, reason) in [
        ("proc", "would reach /proc"),
        ("proc-self", "would reach /proc"),
        ("sys", "would reach /sys"),
        ("dev", "would reach /dev"),
        ("via-link", "goes through a symbolic link"),
        ("nested", "lies inside the function's grant"),
    ] {
        assert_error(
            &lambda.call(name, json!({"dir": "/p", "op": "read", "path": "x"})),
            "ManifestInvalid",
            reason,
        );
    }

    for name in [
        "whole-tmp",
        "whole-tmp-ro",
        "the-cache",
        "inside",
        "kept-modules",
        "kept-modules-ro",
        "dotted",
        "trailing",
        "linked",
        "root",
    ] {
        assert_error(
            &lambda.call(name, json!({"dir": "/c", "op": "read", "path": "x"})),
            "ManifestInvalid",
            "would reach the runtime's compile cache",
        );
    }
    // A directory beside the cache is the scratch grant; inside the temporary directory it is
    // made when missing.
    assert_eq!(
        lambda.call(
            "scratch",
            json!({"dir": "/tmp", "op": "create", "path": "note"})
        ),
        json!({"ok": true})
    );
    assert!(tmp.path().join("scratch/note").exists());
    healthy(&lambda);
}

/// The compile cache's entries under `cache` (`modules/<compiler>/<hash>`).
fn cache_entries(cache: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut entries = Vec::new();
    let Ok(compilers) = std::fs::read_dir(cache.join("wasmtime/modules")) else {
        return entries;
    };
    for compiler in compilers {
        for file in std::fs::read_dir(compiler.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().contains('.') {
                entries.push(path);
            }
        }
    }
    entries.sort();
    entries
}

#[test]
fn only_what_the_runtime_wrote_is_loaded_from_the_compile_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap().to_string();
    let cache = tmp.path().join("wasm-lambda");
    let store = store_with_echo();
    let env = [("TMPDIR", tmp_path.as_str())];

    // An environment compiles echo; restarted, it loads what it wrote.
    let lambda = Lambda::start(store.path(), &env);
    healthy(&lambda);
    lambda.wait_for_log("artifact=\"compiled\"", Duration::from_secs(30));
    drop(lambda);
    let written = cache_entries(&cache);
    assert!(!written.is_empty());
    let lambda = Lambda::start(store.path(), &env);
    healthy(&lambda);
    lambda.wait_for_log("artifact=\"loaded\"", Duration::from_secs(30));
    drop(lambda);

    // Every entry rewritten, and one planted: none is loaded, each is compiled afresh.
    for entry in &written {
        let mut bytes = std::fs::read(entry).unwrap();
        bytes.reverse();
        std::fs::write(entry, bytes).unwrap();
    }
    let planted = written[0].with_file_name("planted");
    std::fs::write(&planted, b"native code, supposedly").unwrap();
    let lambda = Lambda::start(store.path(), &env);
    healthy(&lambda);
    lambda.wait_for_log("artifact=\"compiled\"", Duration::from_secs(30));
    assert!(
        lambda
            .logs()
            .contains("compile cache entry not written by this runtime"),
        "{}",
        lambda.logs()
    );
    assert!(!planted.exists(), "the planted entry is removed");
    healthy(&lambda);
}

/// Grows a table by `count` elements four times.
fn table_grower(count: u32) -> String {
    format!(
        r#"(module
  (table $t 1 funcref)
  (func (export "handle") (result i32)
    (drop (table.grow $t (ref.null func) (i32.const {count})))
    (drop (table.grow $t (ref.null func) (i32.const {count})))
    (drop (table.grow $t (ref.null func) (i32.const {count})))
    (drop (table.grow $t (ref.null func) (i32.const {count})))
    (i32.const 0)))"#
    )
}

#[test]
fn tables_count_against_the_memory_limit() {
    let store = store_with_echo();
    store.add_wat("tables", &table_grower(33_554_432), "memory_limit: 16MiB\n");
    store.add_wat(
        "big-table",
        r#"(module (table 33554432 funcref) (func (export "handle") (result i32) (i32.const 0)))"#,
        "memory_limit: 16MiB\n",
    );
    let many: String = (0..50)
        .map(|i| format!("(table $t{i} 100000 funcref)"))
        .collect();
    let countless: String = (0..100)
        .map(|i| format!("(table $t{i} 1 funcref)"))
        .collect();
    store.add_wat(
        "countless-tables",
        &format!(r#"(module {countless} (func (export "handle") (result i32) (i32.const 0)))"#),
        "",
    );
    store.add_wat(
        "many-tables",
        &format!(r#"(module {many} (func (export "handle") (result i32) (i32.const 0)))"#),
        "memory_limit: 16MiB\n",
    );
    // Small tables still grow.
    store.add_wat("small", &table_grower(1000), "memory_limit: 16MiB\n");
    let lambda = Lambda::start(store.path(), &[]);
    healthy(&lambda);
    let baseline = lambda.bootstrap_rss_kib();
    for _ in 0..3 {
        assert_error(
            &lambda.call("tables", Value::Null),
            "FunctionTrap",
            "memory limit of 16 MiB exceeded by tables of",
        );
        healthy(&lambda);
    }
    for name in ["big-table", "many-tables"] {
        assert_error(
            &lambda.call(name, Value::Null),
            "ModuleInvalid",
            "table limit",
        );
        healthy(&lambda);
    }
    assert_error(
        &lambda.call("countless-tables", Value::Null),
        "ModuleInvalid",
        "table count too high",
    );
    for _ in 0..3 {
        assert_eq!(lambda.call("small", Value::Null), json!(""));
    }
    let grown = lambda.bootstrap_rss_kib().saturating_sub(baseline);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

#[test]
fn an_instance_that_cannot_be_made_marks_its_function_broken_and_holds_nothing_up() {
    let store = store_with_echo();
    let looping_start = r#"(module
  (func $loop (loop $l (br $l)))
  (start $loop)
  (func (export "handle") (result i32) (i32.const 0)))"#;
    store.add_wat("start-loop", looping_start, "timeout: 5s\n");
    store.add_wat(
        "init-loop",
        r#"(module
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "handle") (result i32) (i32.const 0)))"#,
        "timeout: 5s\ninstance: fresh\nwasi: true\n",
    );
    store.add_wat(
        "start-trap",
        r#"(module
  (func $trap (unreachable))
  (start $trap)
  (func (export "handle") (result i32) (i32.const 0)))"#,
        "",
    );
    let lambda = Lambda::start(store.path(), &[]);
    healthy(&lambda);

    for name in ["start-loop", "init-loop"] {
        assert_error(
            &lambda.call(name, Value::Null),
            "FunctionTimeout",
            "limit 5000 ms",
        );
        // Nothing prepared in between holds the next invocation up, and the function answers at
        // once, without trying again.
        let started = Instant::now();
        healthy(&lambda);
        assert_error(
            &lambda.call(name, Value::Null),
            "ModuleInvalid",
            "did not return within 5000 ms",
        );
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{name}: {:?}\n{}",
            started.elapsed(),
            lambda.logs()
        );
    }
    for _ in 0..2 {
        assert_error(
            &lambda.call("start-trap", Value::Null),
            "ModuleInvalid",
            "cannot be instantiated",
        );
    }
    lambda.wait_for_log(
        "instances of this function cannot be made",
        Duration::from_secs(5),
    );
    healthy(&lambda);
}

#[test]
fn http_answers_never_carry_injected_headers() {
    let store = store_with_echo();
    let output = r#"{"status":200,"headers":{"set-cookie":["a=1\r\nX-Injected: yes","b=2"],"x-split":"1\nX-Injected: yes","x-fine":"yes"},"body":"ok"}"#;
    store.add_wat(
        "injector",
        &common::constant_plugin(output),
        "hooks:\n  - {type: http, method: GET, path: \"/hello/{name}\"}\n",
    );
    let lambda = Lambda::start(store.path(), &[]);
    for fixture in [
        "apigw-v2-get-hello.json",
        "apigw-v1-get-hello.json",
        "alb-get-hello.json",
        "alb-multivalue-get-hello.json",
    ] {
        let answer = lambda.invoke(&event(fixture));
        let text = answer.to_string();
        assert!(!text.contains("X-Injected"), "{fixture}: {text}");
        assert!(text.contains("x-fine"), "{fixture}: {text}");
    }
    assert_eq!(
        lambda.invoke(&event("apigw-v2-get-hello.json"))["cookies"],
        json!(["b=2"])
    );
    lambda.wait_for_log(
        "response header value dropped: it holds CR, LF",
        Duration::from_secs(5),
    );
    healthy(&lambda);
}

#[test]
fn plugin_logs_are_bounded_per_line_and_per_invocation() {
    let store = store_with_echo();
    hostile(&store, "logger", "log_flood", "");
    let lambda = Lambda::start(store.path(), &[]);

    assert_eq!(
        lambda.call("logger", json!({"lines": 1, "size": 20_000_000})),
        json!("logged 1 lines of 20000000 bytes")
    );
    lambda.wait_for_log("of 20000000 bytes not logged]", Duration::from_secs(10));
    let longest = lambda
        .logs()
        .lines()
        .map(str::len)
        .max()
        .unwrap_or_default();
    assert!(longest < 300 * 1024, "a log line of {longest} bytes");

    let before = lambda.logs().len();
    assert_eq!(
        lambda.call("logger", json!({"lines": 100_000, "size": 1000})),
        json!("logged 100000 lines of 1000 bytes")
    );
    lambda.wait_for_log("its further log lines are dropped", Duration::from_secs(10));
    let logged = lambda.logs().len() - before;
    assert!(logged < 3 * 1024 * 1024, "{logged} bytes logged");
    healthy(&lambda);
}

/// A module of `count` small functions.
fn many_functions(count: usize) -> String {
    let mut wat = String::from("(module\n");
    for i in 0..count {
        wat.push_str(&format!(
            "(func $f{i} (param i32) (result i32) (i32.add (local.get 0) (i32.const {i})))\n"
        ));
    }
    wat.push_str("(func (export \"handle\") (result i32) (i32.const 0)))");
    wat
}

#[test]
fn compiling_counts_against_the_timeout_and_the_cache_weighs_what_it_holds() {
    let store = store_with_echo();
    let module = wat::parse_str(many_functions(50_000)).unwrap();
    store.add_module("wide", &module, "timeout: 100ms\n");
    store.add_module("wide-patient", &module, "timeout: 60s\n");
    let lambda = Lambda::start(store.path(), &[("CACHE_MAX_BYTES", "16MiB")]);
    healthy(&lambda);

    // The compile takes longer than the function's timeout: the call answers at its timeout.
    assert_error(
        &lambda.call("wide", Value::Null),
        "FunctionTimeout",
        "limit 100 ms",
    );
    healthy(&lambda);
    // Compiled, it holds more than the whole cache may: refused, with what it would hold.
    assert_error(
        &lambda.call("wide-patient", Value::Null),
        "ModuleInvalid",
        "more than the plugin cache may hold (CACHE_MAX_BYTES",
    );
    healthy(&lambda);
}

#[test]
fn an_event_that_is_not_json_is_an_invalid_request() {
    let store = store_with_echo();
    let lambda = Lambda::start(store.path(), &[]);
    for body in ["not json", "{\"function\": ", "", "\u{0}"] {
        assert_error(
            &lambda.invoke_raw(body),
            "InvalidRequest",
            "the event is not JSON",
        );
        healthy(&lambda);
    }
}

#[test]
fn a_grant_swapped_for_a_link_by_another_function_is_refused_at_the_next_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap().to_string();
    std::fs::create_dir_all(tmp.path().join("outer/inner")).unwrap();
    let store = store_with_echo();
    // One function may write `outer`; another is granted `outer/inner`.
    hostile(
        &store,
        "swapper",
        "fs_attack",
        &format!("allowed_paths: {{{tmp_path}/outer: /o}}\n"),
    );
    hostile(
        &store,
        "victim",
        "fs_attack",
        &format!("allowed_paths: {{{tmp_path}/outer/inner: /i}}\ninstance: fresh\n"),
    );
    let lambda = Lambda::start(store.path(), &[("TMPDIR", &tmp_path)]);
    let victim = || lambda.call("victim", json!({"dir": "/i", "op": "create", "path": "x"}));
    // The grant works (its directory is empty: nothing to read).
    assert_eq!(
        lambda.call("victim", json!({"dir": "/i", "op": "read", "path": "x"})),
        json!({"ok": false, "errno": "NOENT"})
    );

    // `inner` becomes a link to the compile cache.
    assert_eq!(
        lambda.call(
            "swapper",
            json!({"dir": "/o", "op": "replace_with_link", "path": "inner", "target": "../wasm-lambda"})
        ),
        json!({"ok": true})
    );
    assert!(tmp.path().join("outer/inner").is_symlink());
    // The instance made before the swap holds the directory it opened then; the next one is
    // refused when its grants are checked again, and no call ever writes into the cache.
    let answers: Vec<Value> = (0..3).map(|_| victim()).collect();
    assert!(
        answers
            .iter()
            .any(|answer| answer["errorType"] == "ManifestInvalid"
                && answer["errorMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("would reach the runtime's compile cache"))),
        "{answers:?}"
    );
    assert!(!tmp.path().join("wasm-lambda/x").exists());
    healthy(&lambda);
}

#[test]
fn a_functions_own_error_messages_and_log_lines_are_bounded_and_cannot_forge_lines() {
    let store = store_with_echo();
    hostile(&store, "failer", "big_error", "");
    hostile(&store, "logger", "log_flood", "");
    let lambda = Lambda::start(store.path(), &[]);

    let before = lambda.logs().len();
    let answer = lambda.call("failer", json!("20000000"));
    assert_error(&answer, "FunctionError", "[cut: ");
    let message = answer["errorMessage"].as_str().unwrap();
    assert!(
        message.len() < 5000,
        "an error message of {} bytes",
        message.len()
    );
    healthy(&lambda);
    let logged = lambda.logs().len() - before;
    assert!(
        logged < 64 * 1024,
        "{logged} bytes logged for one failed call"
    );

    // Many tiny lines are bounded too.
    let before = lambda.logs().len();
    assert_eq!(
        lambda.call("logger", json!({"lines": 200_000, "size": 1})),
        json!("logged 200000 lines of 1 bytes")
    );
    lambda.wait_for_log("its further log lines are dropped", Duration::from_secs(10));
    let logged = lambda.logs().len() - before;
    assert!(logged < 3 * 1024 * 1024, "{logged} bytes logged");

    // A line break in a message never starts a log line of its own.
    lambda.call(
        "logger",
        json!({"lines": 1, "text": "first\n INFO forged line function=echo"}),
    );
    lambda.wait_for_log("first\\n INFO forged line", Duration::from_secs(10));
    assert!(
        !lambda
            .logs()
            .lines()
            .any(|line| line.starts_with(" INFO forged line")),
        "{}",
        lambda.logs()
    );
    healthy(&lambda);
}

/// Reads what an earlier instance of its module could have left and answers `"dirty"` if it
/// finds any; else leaves it all and answers `"clean"`. It leaves its memory grown from one
/// page to 41, a mark in the first 16 KiB (zeroed in place by a reset slot without the kernel's
/// page scan), one beyond them in its initial memory, and one every `stride` bytes of what it
/// grew. With the page scan, 4096 marks all 640 pages, more than a reset zeroes in place (the
/// rest are handed back); 8192 marks every other page, more separate runs than the scan
/// reports at once (past them, the memory is handed back).
fn snooper(stride: u32) -> String {
    format!(
        r#"(module {}
  (data (i32.const 1024) "\"dirty\"")
  (data (i32.const 1040) "\"clean\"")
  (func (export "handle") (result i32)
    (local $page i32)
    (if (i32.or (i32.ne (memory.size) (i32.const 1))
          (i32.or (i32.load (i32.const 4096)) (i32.load (i32.const 60000))))
      (then (call $out (i32.const 1024) (i32.const 7)) (return (i32.const 0))))
    (drop (memory.grow (i32.const 40)))
    (local.set $page (i32.const 65536))
    (block $grown
      (loop $each
        (br_if $grown (i32.ge_u (local.get $page) (i32.const 2686976)))
        (if (i32.load (local.get $page))
          (then (call $out (i32.const 1024) (i32.const 7)) (return (i32.const 0))))
        (i32.store (local.get $page) (i32.const 0x5ec12e7))
        (local.set $page (i32.add (local.get $page) (i32.const {stride})))
        (br $each)))
    (i32.store (i32.const 4096) (i32.const 0x5ec12e7))
    (i32.store (i32.const 60000) (i32.const 0x5ec12e7))
    (call $out (i32.const 1040) (i32.const 7))
    (i32.const 0)))"#,
        common::WAT_PRELUDE
    )
}

/// The same for a table: answers `"dirty"` unless its table is as instantiated (2 elements, the
/// first set by its element segment, the second null); then leaves it changed (the first
/// cleared, the second set, and grown to 4,096 elements), whatever a reset would have to undo.
fn table_snooper() -> String {
    format!(
        r#"(module {}
  (data (i32.const 1024) "\"dirty\"")
  (data (i32.const 1040) "\"clean\"")
  (table $t 2 funcref)
  (elem (i32.const 0) func $mark)
  (func $mark)
  (func (export "handle") (result i32)
    (if (i32.or (i32.ne (table.size $t) (i32.const 2))
          (i32.or (ref.is_null (table.get $t (i32.const 0)))
                  (i32.eqz (ref.is_null (table.get $t (i32.const 1))))))
      (then (call $out (i32.const 1024) (i32.const 7)) (return (i32.const 0))))
    (table.set $t (i32.const 0) (ref.null func))
    (table.set $t (i32.const 1) (ref.func $mark))
    (drop (table.grow $t (ref.func $mark) (i32.const 4094)))
    (call $out (i32.const 1040) (i32.const 7))
    (i32.const 0)))"#,
        common::WAT_PRELUDE
    )
}

/// A module whose initialisation calls host functions (it sets a plugin variable), and whose
/// `handle` outputs that variable; `run` is how its initialisation is run: `(start $start)`, a
/// WebAssembly start function, or an export such as `_initialize` that the host calls.
fn starter(run: &str) -> String {
    format!(
        r#"(module
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  {}
  (data (i32.const 1024) "key")
  (data (i32.const 1040) "\"set by start\"")
  (func $start
    (call $var_set
      (call $put (i32.const 1024) (i32.const 3))
      (call $put (i32.const 1040) (i32.const 14))))
  {run}
  (func (export "handle") (result i32)
    (local $value i64)
    (local.set $value (call $var_get (call $put (i32.const 1024) (i32.const 3))))
    (call $output_set (local.get $value) (call $length (local.get $value)))
    (i32.const 0)))"#,
        common::WAT_PRELUDE
    )
}

#[test]
fn a_start_function_that_calls_the_host_reaches_its_own_instance() {
    // Initialisation runs when the instance is made: ahead of the call for `fresh`, on the
    // first call for `reuse`; its host calls act on that instance's store either way. Its
    // siblings: `_initialize` and `__wasm_call_ctors`, which the host calls after the start
    // function, with WASI and without (WASI's calls run on another thread).
    let store = Store::new();
    let kinds = [
        ("start", "(start $start)", ""),
        ("initialize", r#"(export "_initialize" (func $start))"#, ""),
        ("ctors", r#"(export "__wasm_call_ctors" (func $start))"#, ""),
        (
            "wasi",
            r#"(export "_initialize" (func $start))"#,
            "wasi: true\n",
        ),
    ];
    let mut functions = Vec::new();
    for (kind, run, wasi) in kinds {
        for instance in ["fresh", "reuse"] {
            let name = format!("{kind}-{instance}");
            store.add_wat(
                &name,
                &starter(run),
                &format!("{wasi}instance: {instance}\n"),
            );
            functions.push(name);
        }
    }
    let lambda = Lambda::start(store.path(), &[]);
    for round in 0..3 {
        for function in &functions {
            assert_eq!(
                lambda.call(function, Value::Null),
                json!("set by start"),
                "{function}, call {round}"
            );
        }
    }
}

#[test]
fn a_fresh_instance_finds_nothing_an_earlier_one_left_in_its_memory_or_tables() {
    let store = Store::new();
    store.add_wat("fresh-a", &snooper(4096), "instance: fresh\n");
    store.add_wat("fresh-b", &snooper(8192), "instance: fresh\n");
    store.add_wat("warm", &snooper(4096), "instance: reuse\n");
    store.add_wat("fresh-table", &table_snooper(), "instance: fresh\n");
    store.add_wat("warm-table", &table_snooper(), "instance: reuse\n");
    // Each way a slot can be reset; where this kernel lacks one, the next one is used.
    for (reset, concurrency) in [("scan", "1"), ("scan", "4"), ("read", "1"), ("zero", "1")] {
        let lambda = Lambda::start(
            store.path(),
            &[
                ("AWS_LAMBDA_MAX_CONCURRENCY", concurrency),
                ("SLOT_RESET", reset),
            ],
        );
        // The control: an instance kept warm finds its own marks.
        assert_eq!(lambda.call("warm", Value::Null), json!("clean"));
        assert_eq!(lambda.call("warm", Value::Null), json!("dirty"));
        assert_eq!(lambda.call("warm-table", Value::Null), json!("clean"));
        assert_eq!(lambda.call("warm-table", Value::Null), json!("dirty"));
        // Each call of a fresh function runs on an instance made for it, in a slot of its
        // engine's pool that earlier instances used: nothing of theirs is there.
        for round in 0..6 {
            for function in ["fresh-a", "fresh-b", "fresh-table"] {
                assert_eq!(
                    lambda.call(function, Value::Null),
                    json!("clean"),
                    "{function}, call {round}, concurrency {concurrency}, reset {reset}"
                );
            }
        }
        let lambda = &lambda;
        std::thread::scope(|scope| {
            let calls: Vec<_> = (0..8)
                .map(|i| {
                    let function = ["fresh-a", "fresh-b"][i % 2];
                    scope.spawn(move || lambda.call(function, Value::Null))
                })
                .collect();
            for call in calls {
                assert_eq!(call.join().unwrap(), json!("clean"));
            }
        });
    }
}
