//! Functions in S3: cold load, revalidation, hot deploys through `wasm-lambda publish`,
//! stale-if-error, recovery, broken versions and pagination, against a real S3-compatible
//! server process and the real bootstrap under the Lambda Runtime API emulator.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use common::{Lambda, S3Server, Store, assert_error, constant_plugin, eventually};
use serde_json::{Value, json};

const BUCKET: &str = "functions";

fn hello_manifest(greeting: &str) -> String {
    format!(
        "name: hello\nruntime: wasm\nconfig: {{greeting: {greeting}}}\nhooks:\n  - {{type: http, method: GET, path: \"/hello/{{name}}\"}}\n"
    )
}

/// A local store with `hello` (greeting `greeting`) and `echo`.
fn local_store(greeting: &str) -> Store {
    let store = Store::new();
    let hello = std::fs::read(common::built_function("hello")).unwrap();
    store.add("hello", &hello_manifest(greeting), Some(&hello));
    store.add_built("echo", "echo", "");
    store
}

/// A server with the bucket, and `hello` (greeting Hello) and `echo` published to it.
fn published() -> S3Server {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    publish(&s3, local_store("Hello").path());
    s3
}

fn publish(s3: &S3Server, dir: &Path) {
    let (ok, stdout, stderr) = s3.publish(BUCKET, &[dir.to_str().unwrap()]);
    assert!(ok, "publish failed:\n{stdout}\n{stderr}");
}

fn lambda_on(s3: &S3Server, extra: &[(&str, &str)]) -> Lambda {
    let env = s3.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("FUNCTIONS_BUCKET", BUCKET));
    all.extend_from_slice(extra);
    Lambda::launch(&all)
}

fn count(requests: &[String], needle: &str) -> usize {
    requests.iter().filter(|line| line.contains(needle)).count()
}

#[test]
fn a_cold_environment_loads_from_s3_and_revalidation_is_a_conditional_get() {
    let s3 = published();
    let lambda = lambda_on(&s3, &[("REVALIDATE_AFTER", "1s")]);
    assert!(lambda.logs().contains("functions=2"), "{}", lambda.logs());
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
    assert_eq!(lambda.call("echo", json!([1])), json!([1]));

    // Within the interval nothing is asked of S3.
    let before = s3.requests().len();
    for _ in 0..10 {
        assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
        assert_eq!(lambda.call("echo", json!(2)), json!(2));
    }
    assert_eq!(
        s3.requests().len(),
        before,
        "{:#?}",
        &s3.requests()[before..]
    );

    // After it, the function called is revalidated with one conditional GET: a 304, no module
    // fetch, no recompile.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(lambda.call("echo", json!(3)), json!(3));
    let new = s3.requests()[before..].to_vec();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert!(
        new[0].contains("GET /functions/echo/manifest.yaml") && new[0].contains("\" 304"),
        "{new:#?}"
    );
    assert_eq!(lambda.call("echo", json!(4)), json!(4));
    assert_eq!(s3.requests().len(), before + 1, "one check per interval");

    // An HTTP call re-lists for the routing table; the listing confirms every unchanged
    // manifest, so none is fetched.
    let before = s3.requests().len();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
    let new = s3.requests()[before..].to_vec();
    assert_eq!(count(&new, "list-type=2"), 1, "{new:#?}");
    assert_eq!(new.len(), 1, "{new:#?}");
    for function in ["hello", "echo"] {
        let compiled = format!("compiled function function={function}");
        assert_eq!(lambda.logs().matches(&compiled).count(), 1);
    }
}

#[test]
fn a_function_published_after_init_answers_direct_invocations_at_once() {
    let s3 = published();
    // The default interval (30 s) is far longer than this test.
    let lambda = lambda_on(&s3, &[]);
    assert_eq!(lambda.call("echo", json!("up")), json!("up"));

    let late = Store::new();
    late.add_wat("late", &constant_plugin("\"here\""), "");
    publish(&s3, late.path());
    assert_eq!(lambda.call("late", Value::Null), json!("here"));

    // A name the store does not hold is FunctionNotFound, and is not asked again within the
    // interval.
    assert_error(
        &lambda.call("nobody", Value::Null),
        "FunctionNotFound",
        "`nobody` not found in s3://functions/",
    );
    let before = s3.requests().len();
    assert_error(
        &lambda.call("nobody", Value::Null),
        "FunctionNotFound",
        "nobody",
    );
    assert_eq!(s3.requests().len(), before);
    assert_error(
        &lambda.call("../echo", Value::Null),
        "InvalidRequest",
        "`../echo` is not a function name",
    );
}

#[test]
fn a_publish_during_traffic_switches_versions_without_a_failed_call() {
    let s3 = published();
    let lambda = lambda_on(&s3, &[("REVALIDATE_AFTER", "200ms")]);

    let stop = AtomicBool::new(false);
    let answers = std::thread::scope(|scope| {
        let traffic = scope.spawn(|| {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(lambda.url("GET", "/hello/ada", None));
            }
            answers
        });
        std::thread::sleep(Duration::from_millis(300));
        publish(&s3, local_store("Howdy").path());
        let started = Instant::now();
        while lambda.url("GET", "/hello/ada", None).2 != "Howdy, ada!\n" {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{}",
                lambda.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        traffic.join().unwrap()
    });

    assert!(
        answers.len() > 10,
        "only {} calls during the deploy",
        answers.len()
    );
    let bodies: Vec<&str> = answers.iter().map(|(_, _, body)| body.as_str()).collect();
    for (status, _, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(body == "Hello, ada!\n" || body == "Howdy, ada!\n", "{body}");
    }
    // Once the new version answers, the old one never does again.
    let first_new = bodies
        .iter()
        .position(|b| b.starts_with("Howdy"))
        .expect("new version served");
    assert!(
        bodies[first_new..].iter().all(|b| b.starts_with("Howdy")),
        "{bodies:?}"
    );
    assert!(bodies[0].starts_with("Hello"));
}

#[test]
fn when_s3_is_down_cached_functions_keep_serving_and_service_recovers() {
    let mut s3 = published();
    let lambda = lambda_on(&s3, &[("REVALIDATE_AFTER", "1s")]);
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");

    s3.stop();
    let outage = Instant::now();
    // Both ways in keep answering from what was loaded: routed and direct.
    let serves_stale = || {
        let (status, _, body) = lambda.url("GET", "/hello/ada", None);
        assert_eq!((status, body.as_str()), (200, "Hello, ada!\n"));
        assert_eq!(lambda.call("hello", json!({"params": {}}))["status"], 200);
    };
    eventually(Duration::from_secs(20), "the outage to be noticed", || {
        serves_stale();
        let logs = lambda.logs();
        logs.contains("the last routing table keeps serving")
            && logs.contains("function=hello")
            && logs.contains("the last version read keeps serving")
    });
    for _ in 0..10 {
        serves_stale();
    }
    // One warning per function (and per listing) per interval, not one per call.
    let intervals = outage.elapsed().as_secs() as usize + 1;
    for warning in [
        "the last version read keeps serving",
        "the last routing table keeps serving",
    ] {
        let warned = lambda.logs().matches(warning).count();
        assert!(
            warned <= intervals,
            "{warned} warnings in {intervals} intervals: {warning}"
        );
    }
    // echo is in the catalog, but its module was never fetched.
    assert_error(&lambda.call("echo", json!(1)), "StoreUnavailable", "echo");

    // The server comes back (empty, as moto keeps data in memory) and is published to again.
    s3.restart();
    s3.create_bucket(BUCKET);
    publish(&s3, local_store("Hello").path());
    eventually(Duration::from_secs(20), "recovery", || {
        lambda.call("echo", json!("back")) == json!("back")
    });
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
}

#[test]
fn a_store_that_never_answers_fails_the_call_before_its_deadline() {
    // Accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming() {
            held.push(stream);
        }
    });
    let s3 = S3Server::start();
    let mut env: Vec<(&str, &str)> = Vec::new();
    let vars = s3.env();
    for (name, value) in &vars {
        if *name != "AWS_ENDPOINT_URL_S3" {
            env.push((name, value));
        }
    }
    env.extend([
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
        ("FUNCTIONS_BUCKET", BUCKET),
    ]);
    let lambda = Lambda::launch_with_timeout(&env, Duration::from_secs(2));
    assert!(lambda.logs().contains("function store unavailable at init"));

    for _ in 0..2 {
        let started = Instant::now();
        let answer = lambda.call("echo", json!(1));
        assert_error(&answer, "StoreUnavailable", "no answer within");
        assert!(started.elapsed() < Duration::from_secs(2), "{answer}");
    }
    let started = Instant::now();
    let (status, _, body) = lambda.url("GET", "/hello/ada", None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("StoreUnavailable"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_broken_new_version_never_replaces_the_last_good_one() {
    let s3 = published();
    let lambda = lambda_on(&s3, &[("REVALIDATE_AFTER", "100ms")]);
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");

    // A manifest whose module does not match its digest.
    let wrong = "0".repeat(64);
    s3.put(BUCKET, &format!("hello/{wrong}.wasm"), b"\0asm tampered");
    let manifest = format!(
        "{}module: {wrong}.wasm\nsha256: {wrong}\n",
        hello_manifest("Tampered")
    );
    s3.put(BUCKET, "hello/manifest.yaml", manifest.as_bytes());
    eventually(
        Duration::from_secs(20),
        "the broken version to be seen",
        || {
            assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
            lambda
                .logs()
                .contains("new version does not load; the last good version keeps serving")
        },
    );

    // A manifest that no longer parses.
    s3.put(BUCKET, "hello/manifest.yaml", b"name: hello\nruntime: [\n");
    eventually(
        Duration::from_secs(20),
        "the invalid manifest to be seen",
        || {
            assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
            lambda
                .logs()
                .contains("new manifest is invalid; the last good version keeps serving")
        },
    );

    // A function that never had a good version fails, naming the mismatch.
    s3.put(
        BUCKET,
        "bad/manifest.yaml",
        format!("name: bad\nruntime: wasm\nmodule: {wrong}.wasm\nsha256: {wrong}\n").as_bytes(),
    );
    s3.put(BUCKET, &format!("bad/{wrong}.wasm"), b"\0asm tampered");
    eventually(
        Duration::from_secs(20),
        "the new function to be listed",
        || lambda.call("bad", Value::Null)["errorType"] != "FunctionNotFound",
    );
    assert_error(
        &lambda.call("bad", Value::Null),
        "ModuleInvalid",
        "not the expected",
    );
}

#[test]
fn publish_validates_first_skips_present_modules_and_prunes() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);

    let broken = Store::new();
    broken.add("nomodule", "name: nomodule\nruntime: wasm\n", None);
    let (ok, _, stderr) = s3.publish(BUCKET, &[broken.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("nomodule/nomodule.wasm does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was published"), "{stderr}");

    let v1 = Store::new();
    v1.add_wat("version", &constant_plugin("\"v1\""), "");
    let (ok, stdout, stderr) =
        s3.publish(BUCKET, &["--prefix", "prod", v1.path().to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("module uploaded"), "{stdout}");
    let (ok, stdout, _) = s3.publish(
        BUCKET,
        &[
            "--prefix",
            "prod",
            v1.path().join("version").to_str().unwrap(),
        ],
    );
    assert!(ok);
    assert!(stdout.contains("module already present"), "{stdout}");

    let v2 = Store::new();
    v2.add_wat("version", &constant_plugin("\"v2\""), "");
    let (ok, stdout, stderr) = s3.publish(
        BUCKET,
        &["--prefix", "prod/", "--prune", v2.path().to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout
            .matches("pruned s3://functions/prod/version/")
            .count(),
        1,
        "{stdout}"
    );

    let lambda = lambda_on(&s3, &[("FUNCTIONS_PREFIX", "prod")]);
    assert_eq!(lambda.call("version", Value::Null), json!("v2"));
}

#[test]
fn a_store_of_2500_functions_is_discovered_fully() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let module = wat::parse_str(constant_plugin("\"last\"")).unwrap();
    let client = s3.client();
    common::block_on(async {
        let puts = (0..2500).map(|i| {
            let client = client.clone();
            let module = module.clone();
            async move {
                let name = format!("f{i:04}");
                let body = aws_sdk_s3::primitives::ByteStream::from(module);
                client
                    .put_object()
                    .bucket(BUCKET)
                    .key(format!("{name}/{name}.wasm"))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let manifest = format!(
                    "name: {name}\nruntime: wasm\nhooks: [{{type: http, path: /fn/{name}}}]\n"
                );
                let body = aws_sdk_s3::primitives::ByteStream::from(manifest.into_bytes());
                client
                    .put_object()
                    .bucket(BUCKET)
                    .key(format!("{name}/manifest.yaml"))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
            }
        });
        futures::stream::iter(puts)
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    });

    // Routes exist only for functions the listing found: the last page's must route too.
    // Reading 2,500 manifests from a local test server can outlast init; later calls continue
    // where the last read stopped.
    let lambda = lambda_on(&s3, &[]);
    eventually(Duration::from_secs(240), "all 2,500 functions", || {
        lambda.url("GET", "/fn/f2499", None).2 == "\"last\""
    });
    lambda.wait_for_log(
        "functions=2500 invalid=0 routes=2500",
        Duration::from_secs(5),
    );
    assert_eq!(lambda.url("GET", "/fn/f0000", None).2, "\"last\"");
}
