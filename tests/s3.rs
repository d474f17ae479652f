//! Functions in S3: cold load, revalidation, hot deploys through `wasm-lambda publish`,
//! stale-if-error, recovery, broken versions and pagination, against a real S3-compatible
//! server process and the real bootstrap under the Lambda Runtime API emulator.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Every key in the bucket.
fn bucket_keys(s3: &S3Server) -> Vec<String> {
    common::block_on(async {
        let listed = s3
            .client()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|object| object.key().map(str::to_string))
            .collect()
    })
}

fn count(requests: &[String], needle: &str) -> usize {
    requests.iter().filter(|line| line.contains(needle)).count()
}

#[test]
fn a_cold_environment_loads_from_s3_and_revalidation_is_a_conditional_get() {
    let s3 = published();
    const INTERVAL: Duration = Duration::from_secs(3);
    let lambda = lambda_on(&s3, &[("REVALIDATE_AFTER", "3s")]);
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
    lambda.wait_for_log("functions=2", Duration::from_secs(30));
    assert_eq!(lambda.call("echo", json!([1])), json!([1]));
    // What this cold environment compiled is shared in the background; let that settle.
    eventually(Duration::from_secs(30), "compiled artifacts shared", || {
        lambda.logs().matches("compiled artifacts shared").count() == 2
    });

    // Within the interval nothing is asked of S3. The interval starts at the listing a routed
    // call makes once the last one is older than it (which confirms both manifests).
    std::thread::sleep(INTERVAL);
    let window = Instant::now();
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
    let before = s3.requests().len();
    for _ in 0..10 {
        assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
        assert_eq!(lambda.call("echo", json!(2)), json!(2));
    }
    let new = s3.requests()[before..].to_vec();
    // (A machine too slow to make 20 calls within the interval cannot check this.)
    if window.elapsed() < INTERVAL {
        assert!(new.is_empty(), "{new:#?}");
    }

    // After it, the function called is revalidated with one conditional GET: a 304, no module
    // fetch, no recompile.
    std::thread::sleep(INTERVAL);
    let before = s3.requests().len();
    let checked = Instant::now();
    assert_eq!(lambda.call("echo", json!(3)), json!(3));
    let new = s3.requests()[before..].to_vec();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert!(
        new[0].contains("GET /functions/echo/manifest.yaml") && new[0].contains("\" 304"),
        "{new:#?}"
    );
    assert_eq!(lambda.call("echo", json!(4)), json!(4));
    if checked.elapsed() < INTERVAL {
        assert_eq!(s3.requests().len(), before + 1, "one check per interval");
    }

    // An HTTP call re-lists for the routing table; the listing confirms every unchanged
    // manifest, so none is fetched.
    std::thread::sleep(INTERVAL);
    let before = s3.requests().len();
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
    // What compiling them wrote is shared in the background: let that settle.
    eventually(Duration::from_secs(30), "echo and late shared", || {
        lambda
            .logs()
            .matches("compiled artifacts shared with the fleet")
            .count()
            == 2
    });

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
    let served = AtomicUsize::new(0);
    let answers = std::thread::scope(|scope| {
        let traffic = scope.spawn(|| {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(lambda.url("GET", "/hello/ada", None));
                served.fetch_add(1, Ordering::Relaxed);
            }
            answers
        });
        eventually(Duration::from_secs(60), "traffic before the deploy", || {
            served.load(Ordering::Relaxed) >= 3
        });
        publish(&s3, local_store("Howdy").path());
        let started = Instant::now();
        while lambda.url("GET", "/hello/ada", None).2 != "Howdy, ada!\n" {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}",
                lambda.logs()
            );
        }
        let seen = served.load(Ordering::Relaxed);
        eventually(Duration::from_secs(30), "traffic after the switch", || {
            served.load(Ordering::Relaxed) >= (seen + 5).max(11)
        });
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
    eventually(Duration::from_secs(60), "the outage to be noticed", || {
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
    eventually(Duration::from_secs(60), "recovery", || {
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
        // Time kept to answer through the emulator and the deadline proxy, on a loaded machine.
        ("DEADLINE_MARGIN", "500ms"),
    ]);
    let lambda = Lambda::launch_with_timeout(&env, Duration::from_secs(2));

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
    // A public caller learns the kind of failure and the request id, nothing of the store.
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["errorMessage"],
        "the function is unavailable; try again later"
    );
    assert_eq!(
        answer["requestId"].as_str().map(str::len),
        Some(36),
        "{body}"
    );
    for internal in ["127.0.0.1", BUCKET, "manifest", "dispatch", "hello"] {
        assert!(!body.contains(internal), "{internal} in {body}");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // The listing, started once the first call had answered, gives up and says so.
    eventually(Duration::from_secs(60), "the listing's warning", || {
        lambda
            .logs()
            .contains("function store unavailable for its listing")
    });
}

#[test]
fn a_store_that_gives_no_answer_for_the_bundle_is_not_asked_for_the_module_too() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let store = local_store("Hello");
    let (ok, stdout, stderr) = s3.publish(
        BUCKET,
        &["--target", "host", store.path().to_str().unwrap()],
    );
    assert!(ok, "{stdout}{stderr}");
    let module = std::fs::read(common::built_function("echo")).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module));

    // Manifests and modules are served; the compiled artifacts' requests go unanswered.
    let unanswered = |head: String| {
        let line = head.lines().next().unwrap_or_default();
        (!line.contains("/_compiled/")).then_some(head)
    };
    let port = common::proxy(s3.port, Some(std::sync::Arc::new(unanswered)), None);
    let endpoint = format!("http://127.0.0.1:{port}");
    let vars = s3.env();
    let mut env: Vec<(&str, &str)> = vars
        .iter()
        .filter(|(name, _)| *name != "AWS_ENDPOINT_URL_S3")
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    env.extend([
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
        ("FUNCTIONS_BUCKET", BUCKET),
        ("DEADLINE_MARGIN", "500ms"),
    ]);
    let lambda = Lambda::launch_with_timeout(&env, Duration::from_secs(4));
    let before = s3.requests().len();
    let started = Instant::now();
    let answer = lambda.call("echo", json!(1));
    assert_error(&answer, "StoreUnavailable", "compiled artifacts");
    assert!(started.elapsed() < Duration::from_secs(4), "{answer}");
    let requests = s3.requests()[before..].to_vec();
    // Its manifest came through; its module was not asked for.
    assert!(
        count(&requests, &format!("GET /{BUCKET}/echo/manifest.yaml")) >= 1,
        "{requests:#?}"
    );
    assert_eq!(
        count(&requests, &format!("GET /{BUCKET}/echo/{digest}.wasm")),
        0,
        "{requests:#?}"
    );
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
        Duration::from_secs(60),
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
        Duration::from_secs(60),
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
        Duration::from_secs(60),
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
        &[
            "--prefix",
            "prod/",
            "--prune",
            "--keep",
            "0s",
            v2.path().to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    // v1 is the version before the current one, which a prune always keeps (see
    // `prune_keeps_what_environments_may_need_and_rollback_restores_a_version`).
    assert_eq!(
        stdout
            .matches("pruned s3://functions/prod/version/")
            .count(),
        0,
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
    s3.put_functions(BUCKET, "", 2500, &module, "/fn/");

    // Routes exist only for functions the listing found: the last page's must route too.
    // Reading 2,500 manifests from a local test server can outlast init; later calls continue
    // where the last read stopped.
    let lambda = lambda_on(&s3, &[]);
    eventually(Duration::from_secs(240), "all 2,500 functions", || {
        lambda.url("GET", "/fn/f2499", None).2 == "\"last\""
            && lambda
                .logs()
                .contains("functions=2500 invalid=0 routes=2500")
    });
    assert_eq!(lambda.url("GET", "/fn/f0000", None).2, "\"last\"");
}

/// The metrics line of the last call to `function`, once written.
fn last_metrics(lambda: &Lambda, function: &str) -> Value {
    eventually(Duration::from_secs(5), "a metrics line", || {
        !lambda.metrics_of(function).is_empty()
    });
    lambda.metrics_of(function).pop().unwrap()
}

#[test]
fn compiled_artifacts_are_shared_through_the_store() {
    let s3 = published();
    let module = std::fs::read(common::built_function("echo")).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module));
    // Under the engine's key: artifacts of another wasmtime, target or setting are elsewhere.
    let key = format!(
        "_compiled/{}",
        wasm_lambda::artifacts::ArtifactKey::new(&digest, false)
    );
    let bundle = || -> Option<Vec<u8>> {
        common::block_on(async {
            let object = s3
                .client()
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await;
            let body = object.ok()?.body.collect().await.ok()?;
            Some(body.into_bytes().to_vec())
        })
    };
    let environment =
        |tmp: &tempfile::TempDir| lambda_on(&s3, &[("TMPDIR", tmp.path().to_str().unwrap())]);

    let artifact_get = format!("GET /{BUCKET}/_compiled/");
    let module_get = format!("GET /{BUCKET}/echo/{digest}.wasm");

    // A cold environment compiles, and shares what it compiled. Its first call came before the
    // store's listing: the bundle was asked for first, and there was none, so the module.
    let first = tempfile::tempdir().unwrap();
    let lambda = environment(&first);
    assert_eq!(lambda.call("echo", json!("a")), json!("a"));
    assert_eq!(last_metrics(&lambda, "echo")["artifact"], "compiled");
    let requests = s3.requests();
    assert_eq!(count(&requests, &artifact_get), 1, "{requests:#?}");
    assert_eq!(count(&requests, &module_get), 1, "{requests:#?}");
    lambda.wait_for_log(
        "compiled artifacts shared with the fleet",
        Duration::from_secs(30),
    );
    // Once the first call has answered, the store is listed: it shows no bundle for hello, so
    // hello's first call asks for its module alone.
    lambda.wait_for_log("catalog loaded", Duration::from_secs(30));
    let hello = std::fs::read(common::built_function("hello")).unwrap();
    let hello_get = format!(
        "GET /{BUCKET}/hello/{}.wasm",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&hello))
    );
    let before = s3.requests().len();
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
    let requests = s3.requests()[before..].to_vec();
    assert_eq!(count(&requests, &artifact_get), 0, "{requests:#?}");
    assert_eq!(count(&requests, &hello_get), 1, "{requests:#?}");
    let shared = bundle().expect("a bundle of compiled artifacts in the store");
    let paths: Vec<String> = wasm_lambda::artifacts::unbundle(&shared)
        .unwrap()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert!(!paths.is_empty());
    assert!(
        paths.iter().any(|path| path.starts_with("modules/")),
        "{paths:?}"
    );
    assert!(paths.iter().any(|path| path == "module.wasm"), "{paths:?}");
    drop(lambda);

    // The same environment restarted: its own /tmp has them, nothing is asked of S3 for them.
    let lambda = environment(&first);
    assert_eq!(lambda.call("echo", json!("a2")), json!("a2"));
    assert_eq!(last_metrics(&lambda, "echo")["artifact"], "loaded");
    drop(lambda);

    // Another cold environment, with nothing in its /tmp, loads them instead of compiling; the
    // bundle, asked for first, carries the module: one request.
    let second = tempfile::tempdir().unwrap();
    let lambda = environment(&second);
    let before = s3.requests().len();
    assert_eq!(lambda.call("echo", json!("b")), json!("b"));
    assert_eq!(last_metrics(&lambda, "echo")["artifact"], "loaded");
    let requests = s3.requests()[before..].to_vec();
    assert_eq!(count(&requests, &artifact_get), 1, "{requests:#?}");
    assert_eq!(count(&requests, &module_get), 0, "{requests:#?}");
    drop(lambda);

    // Entries that are garbage (a sound bundle, as if from another wasmtime, carrying another
    // module) fail wasmtime's own checks: the module is fetched, compiled afresh and runs.
    let mut garbage: Vec<(String, Vec<u8>)> = paths
        .iter()
        .filter(|path| path.starts_with("modules/"))
        .map(|path| (path.clone(), b"not a compiled module".to_vec()))
        .collect();
    garbage.push(("module.wasm".to_string(), b"\0asm\x01\0\0\0".to_vec()));
    s3.put(BUCKET, &key, &wasm_lambda::artifacts::bundle(&garbage));
    let third = tempfile::tempdir().unwrap();
    let lambda = environment(&third);
    assert_eq!(lambda.call("echo", json!("c")), json!("c"));
    assert_eq!(last_metrics(&lambda, "echo")["artifact"], "compiled");
    assert!(
        lambda
            .logs()
            .contains("compiled artifacts carry another module than the manifest names"),
        "{}",
        lambda.logs()
    );
    // What it compiled replaces them for the fleet.
    lambda.wait_for_log(
        "compiled artifacts shared with the fleet",
        Duration::from_secs(30),
    );
    let replaced = bundle().unwrap();
    let replaced = wasm_lambda::artifacts::unbundle(&replaced).unwrap();
    assert!(
        replaced
            .iter()
            .all(|(_, data)| *data != b"not a compiled module")
    );
    drop(lambda);

    // A bundle that does not match its checksum is not even written to the cache.
    let mut damaged = shared.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    s3.put(BUCKET, &key, &damaged);
    let fourth = tempfile::tempdir().unwrap();
    let lambda = environment(&fourth);
    assert_eq!(lambda.call("echo", json!("d")), json!("d"));
    lambda.wait_for_log(
        "compiled artifacts damaged (checksum mismatch)",
        Duration::from_secs(5),
    );
}

#[test]
fn published_artifacts_load_with_no_compile_and_an_arm64_one_is_refused_here() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let store = local_store("Hello");
    let dir = store.path().to_str().unwrap();
    let targets = [
        "--target",
        "host",
        "--target",
        "aarch64-unknown-linux-gnu",
        dir,
    ];
    let (ok, stdout, stderr) = s3.publish(BUCKET, &targets);
    assert!(ok, "{stdout}{stderr}");
    for line in [
        "compiled for host",
        "compiled for aarch64-unknown-linux-gnu",
    ] {
        assert_eq!(stdout.matches(line).count(), 2, "{line}: {stdout}");
    }
    let module = std::fs::read(common::built_function("echo")).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module));
    let host_key = format!(
        "_compiled/{}",
        wasm_lambda::artifacts::ArtifactKey::new(&digest, false)
    );
    // Keyed apart: one bundle per engine.
    let bundles: Vec<String> = bucket_keys(&s3)
        .into_iter()
        .filter(|key| key.starts_with("_compiled/") && key.ends_with(&digest))
        .collect();
    assert_eq!(bundles.len(), 2, "{bundles:?}");
    assert!(bundles.contains(&host_key), "{bundles:?}");
    let arm_key = bundles
        .iter()
        .find(|key| **key != host_key)
        .unwrap()
        .clone();

    // A cold environment loads what publish compiled: no compile, no module fetched (the
    // bundle carries it), nothing shared back.
    let environment =
        |tmp: &tempfile::TempDir| lambda_on(&s3, &[("TMPDIR", tmp.path().to_str().unwrap())]);
    let first = tempfile::tempdir().unwrap();
    let lambda = environment(&first);
    let before = s3.requests().len();
    assert_eq!(lambda.call("echo", json!("a")), json!("a"));
    assert_eq!(last_metrics(&lambda, "echo")["artifact"], "loaded");
    assert_eq!(lambda.url("GET", "/hello/arm", None).2, "Hello, arm!\n");
    assert_eq!(last_metrics(&lambda, "hello")["artifact"], "loaded");
    let requests = s3.requests()[before..].to_vec();
    assert_eq!(
        count(&requests, &format!("GET /{BUCKET}/echo/{digest}.wasm")),
        0,
        "{requests:#?}"
    );
    assert_eq!(
        count(&requests, &format!("GET /{BUCKET}/{host_key}")),
        1,
        "{requests:#?}"
    );
    assert!(!lambda.logs().contains("compiled artifacts shared"));
    drop(lambda);

    // Published again: artifacts already there are not compiled again.
    let (ok, stdout, stderr) = s3.publish(BUCKET, &targets);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        stdout.matches("host artifacts already present").count(),
        2,
        "{stdout}"
    );

    // The arm64 code in the host's place, under the very entry names this engine looks up: it
    // is refused (wasmtime checks the target), compiled here, and answers.
    let entries = |key: &str| -> Vec<(String, Vec<u8>)> {
        let bundle = s3.get(BUCKET, key).expect(key);
        wasm_lambda::artifacts::unbundle(&bundle)
            .unwrap()
            .into_iter()
            .map(|(path, data)| (path, data.to_vec()))
            .collect()
    };
    let (host, arm) = (entries(&host_key), entries(&arm_key));
    assert_eq!(host.len(), 2, "one entry and the module");
    assert_ne!(host[0].0, arm[0].0, "the arm64 entry is named apart");
    assert_ne!(host[0].1, arm[0].1);
    let swapped = vec![(host[0].0.clone(), arm[0].1.clone()), arm[1].clone()];
    s3.put(BUCKET, &host_key, &wasm_lambda::artifacts::bundle(&swapped));
    let second = tempfile::tempdir().unwrap();
    let lambda = environment(&second);
    assert_eq!(lambda.call("echo", json!("b")), json!("b"));
    assert_eq!(last_metrics(&lambda, "echo")["artifact"], "compiled");
    drop(lambda);

    // A target it cannot compile for is named as such, and nothing is published.
    let before = bucket_keys(&s3);
    let (ok, _, stderr) = s3.publish(BUCKET, &["--target", "x86_64-unknown-linux-gnu", dir]);
    assert!(!ok);
    assert!(
        stderr.contains("unknown target `x86_64-unknown-linux-gnu`"),
        "{stderr}"
    );
    assert_eq!(bucket_keys(&s3), before);
}

#[test]
fn a_cold_start_reads_the_manifest_index_instead_of_each_manifest() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let store = local_store("Hello");
    for i in 0..10 {
        let name = format!("c{i:02}");
        let module = wat::parse_str(constant_plugin(&format!("\"{name}\""))).unwrap();
        let manifest =
            format!("name: {name}\nruntime: wasm\nhooks: [{{type: http, path: /{name}}}]\n");
        store.add(&name, &manifest, Some(&module));
    }
    let (ok, stdout, stderr) = s3.publish(BUCKET, &[store.path().to_str().unwrap()]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("indexed 12 manifests"), "{stdout}");

    // One manifest changed behind the index's back (as by a concurrent publish): the index no
    // longer holds its current version, so it is read on its own.
    let module = wat::parse_str(constant_plugin("\"c05\"")).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module));
    s3.put(
        BUCKET,
        "c05/manifest.yaml",
        format!(
            "name: c05\nruntime: wasm\nmodule: {digest}.wasm\nsha256: {digest}\n\
             hooks: [{{type: http, path: /moved}}]\n"
        )
        .as_bytes(),
    );

    // The first routed call lists the store: the index is read once, and the changed manifest
    // on its own.
    let before = s3.requests().len();
    let lambda = lambda_on(&s3, &[]);
    assert_eq!(lambda.url("GET", "/c00", None).2, "\"c00\"");
    lambda.wait_for_log("functions=12", Duration::from_secs(30));
    let listed = s3.requests()[before..].to_vec();
    assert_eq!(
        count(&listed, "GET /functions/_manifests.json"),
        1,
        "{listed:#?}"
    );
    let manifest_reads: Vec<&String> = listed
        .iter()
        .filter(|line| line.contains("/manifest.yaml"))
        .collect();
    assert_eq!(manifest_reads.len(), 1, "{manifest_reads:#?}");
    assert!(manifest_reads[0].contains("GET /functions/c05/manifest.yaml"));

    assert_eq!(lambda.url("GET", "/moved", None).2, "\"c05\"");
    assert_eq!(lambda.url("GET", "/c05", None).0, 404);
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
}

/// The engine key of the wasmtime before the upgrade (43). `tests/fixtures/artifacts/` holds a
/// module (`tiny.wasm`, from `tiny.wat`) and the bundle of compiled artifacts an environment of
/// that release shared for it.
const OLD_ENGINE: &str = "13d8d64d0e288896";

#[test]
fn artifacts_of_an_earlier_wasmtime_are_refused_and_compiled_afresh() {
    let fixtures = Path::new(common::ROOT).join("tests/fixtures/artifacts");
    let module = std::fs::read(fixtures.join("tiny.wasm")).unwrap();
    let old_bundle = std::fs::read(fixtures.join("wasmtime-43-tiny.bundle")).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module));
    let new_key = format!(
        "_compiled/{}",
        wasm_lambda::artifacts::ArtifactKey::new(&digest, false)
    );
    let old_key = format!("_compiled/{OLD_ENGINE}/{digest}");
    assert_ne!(new_key, old_key, "a new wasmtime is a new engine key");

    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let store = Store::new();
    store.add("tiny", "name: tiny\nruntime: wasm\n", Some(&module));
    publish(&s3, store.path());
    // The earlier release's bundle under its own key, and, as if mislabelled, under this one's.
    s3.put(BUCKET, &old_key, &old_bundle);
    s3.put(BUCKET, &new_key, &old_bundle);

    let lambda = lambda_on(&s3, &[]);
    assert_eq!(lambda.call("tiny", json!(1)), json!(""));
    // Its entries do not fit this engine: compiled afresh, never run.
    assert_eq!(last_metrics(&lambda, "tiny")["artifact"], "compiled");
    let requests = s3.requests();
    assert_eq!(
        count(&requests, &format!("GET /{BUCKET}/{old_key}")),
        0,
        "the earlier engine's key is never asked for: {requests:#?}"
    );
    // What it compiled replaces the mislabelled bundle for the fleet.
    lambda.wait_for_log(
        "compiled artifacts shared with the fleet",
        Duration::from_secs(30),
    );
    let shared = common::block_on(async {
        let object = s3
            .client()
            .get_object()
            .bucket(BUCKET)
            .key(&new_key)
            .send()
            .await
            .unwrap();
        object.body.collect().await.unwrap().into_bytes().to_vec()
    });
    assert_ne!(shared, old_bundle);
    drop(lambda);

    // A new environment loads what this wasmtime compiled.
    let lambda = lambda_on(&s3, &[]);
    assert_eq!(lambda.call("tiny", json!(2)), json!(""));
    assert_eq!(last_metrics(&lambda, "tiny")["artifact"], "loaded");
}

#[test]
fn a_publish_whose_reader_went_away_still_completes() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let store = local_store("Hello");
    // `wasm-lambda publish ... | head -1`: stdout is closed before anything is written.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
        .args([
            "publish",
            "--bucket",
            BUCKET,
            store.path().to_str().unwrap(),
        ])
        .envs(s3.env())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Everything was published: both manifests and the index.
    let keys = bucket_keys(&s3);
    for key in ["hello/manifest.yaml", "echo/manifest.yaml"] {
        assert!(keys.iter().any(|k| k == key), "{key} missing: {keys:?}");
    }
    assert!(keys.iter().any(|k| k == "_manifests.json"), "{keys:?}");
}

#[test]
fn right_after_a_publish_an_outage_keeps_the_last_good_version_serving() {
    let mut s3 = published();
    let lambda = lambda_on(
        &s3,
        &[
            ("REVALIDATE_AFTER", "200ms"),
            ("RUST_LOG", "info,wasm_lambda::catalog=debug"),
        ],
    );
    assert_eq!(lambda.url("GET", "/hello/ada", None).2, "Hello, ada!\n");
    let loaded = || {
        lambda
            .logs()
            .matches("loaded manifest function=hello")
            .count()
    };
    let before = loaded();

    // A new version, with a new module, is published, and a listing (for a path no function
    // routes) reads its manifest; its module is not fetched yet.
    let new_version = || {
        let store = Store::new();
        store.add_wat(
            "hello",
            &constant_plugin("\"new version\""),
            "hooks:\n  - {type: http, method: GET, path: \"/hello/{name}\"}\n",
        );
        store
    };
    publish(&s3, new_version().path());
    eventually(Duration::from_secs(60), "the new manifest read", || {
        lambda.url("GET", "/nothing/here", None);
        loaded() > before
    });
    s3.stop();
    // The last good version keeps serving, with a warning, rather than StoreUnavailable.
    let (status, _, body) = lambda.url("GET", "/hello/ada", None);
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello, ada!\n"),
        "{}",
        lambda.logs()
    );
    lambda.wait_for_log(
        "new version does not load; the last good version keeps serving",
        Duration::from_secs(30),
    );
    assert_eq!(lambda.call("hello", json!({"params": {}}))["status"], 200);

    // Back, the new version loads.
    s3.restart();
    s3.create_bucket(BUCKET);
    publish(&s3, new_version().path());
    eventually(Duration::from_secs(60), "the new version", || {
        lambda.url("GET", "/hello/ada", None).2 == "\"new version\""
    });
}

#[test]
fn publish_refuses_what_validate_refuses_and_routes_already_published() {
    let s3 = published();
    let keys = || bucket_keys(&s3);
    let before = keys();

    // A module that does not export the entrypoint its manifest names.
    let wrong = Store::new();
    wrong.add_wat("wrong", &constant_plugin("1"), "entrypoint: nowhere\n");
    let (ok, _, stderr) = s3.publish(BUCKET, &[wrong.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("entrypoint `nowhere`"), "{stderr}");
    assert!(stderr.contains("nothing was published"), "{stderr}");

    // A route that `hello`, already published, serves.
    let rival = Store::new();
    rival.add_wat(
        "rival",
        &constant_plugin("\"rival\""),
        "hooks:\n  - {type: http, method: GET, path: \"/hello/{name}\"}\n",
    );
    let (ok, _, stderr) = s3.publish(BUCKET, &[rival.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("conflicts with"), "{stderr}");
    assert!(stderr.contains("hello"), "{stderr}");
    assert_eq!(keys(), before, "nothing was uploaded");

    // Asked to, it publishes anyway, with a warning.
    let (ok, _, stderr) = s3.publish(
        BUCKET,
        &["--allow-route-conflicts", rival.path().to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("warning: route"), "{stderr}");
    assert!(keys().iter().any(|key| key == "rival/manifest.yaml"));
}

/// `wasm-lambda <command> --bucket functions args...` against `s3`: (exit code, stdout, stderr).
fn cli_on(s3: &S3Server, command: &str, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
        .arg(command)
        .args(args)
        .args(["--bucket", BUCKET])
        .envs(s3.env())
        .env_remove("REVALIDATE_AFTER")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn prune_keeps_what_environments_may_need_and_rollback_restores_a_version() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let publish_version = |text: &str, extra: &[&str]| {
        let store = Store::new();
        store.add_wat("version", &constant_plugin(&format!("\"{text}\"")), "");
        let module = std::fs::read(store.path().join("version/version.wasm")).unwrap();
        let mut args: Vec<&str> = extra.to_vec();
        args.push(store.path().to_str().unwrap());
        let (ok, stdout, stderr) = s3.publish(BUCKET, &args);
        assert!(ok, "{stdout}{stderr}");
        (
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module)),
            stdout,
        )
    };
    let (v1, _) = publish_version("v1", &[]);
    // A prune right after a publish keeps the module that served until a moment ago (the
    // default window is REVALIDATE_AFTER, 30s).
    let (v2, stdout) = publish_version("v2", &["--prune"]);
    assert!(stdout.contains("pruned 0 objects"), "{stdout}");
    let v1_key = format!("version/{v1}.wasm");
    let v2_key = format!("version/{v2}.wasm");
    assert!(bucket_keys(&s3).contains(&v1_key));

    let lambda = lambda_on(&s3, &[("REVALIDATE_AFTER", "100ms")]);
    assert_eq!(lambda.call("version", Value::Null), json!("v2"));
    // Its compiled bundle, which carries the module too, is shared through the store.
    let bundle = format!(
        "_compiled/{}",
        wasm_lambda::artifacts::ArtifactKey::new(&v2, false)
    );
    eventually(Duration::from_secs(30), "v2's bundle in the store", || {
        bucket_keys(&s3).contains(&bundle)
    });

    let (code, stdout, stderr) = cli_on(&s3, "versions", &["version"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains(&v1[..12]) && !lines[0].contains("current"));
    assert!(lines[1].contains(&v2[..12]) && lines[1].ends_with("current"));

    // Back to the previous version: every environment switches at its next revalidation.
    let (code, stdout, stderr) = cli_on(&s3, "rollback", &["version"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("module {}", &v1[..12])),
        "{stdout}"
    );
    eventually(
        Duration::from_secs(10),
        "the rolled-back version serving",
        || lambda.call("version", Value::Null) == json!("v1"),
    );
    let (_, stdout, _) = cli_on(&s3, "versions", &["version"]);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");

    // v2 is now the version before the current one: the runtime's last good version should v1
    // fail to load, so even a prune with no window keeps it. A third publish makes it older.
    let (code, stdout, stderr) = cli_on(&s3, "prune", &["--keep", "0s"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(bucket_keys(&s3).contains(&v2_key), "{stdout}");
    let (v3, _) = publish_version("v3", &[]);
    eventually(Duration::from_secs(10), "v3 serving", || {
        lambda.call("version", Value::Null) == json!("v3")
    });

    // With no window, what is neither current nor the one before goes: v2's module, its
    // bundle, the old records.
    let (code, stdout, stderr) = cli_on(&s3, "prune", &["--keep", "0s"]);
    assert_eq!(code, 0, "{stderr}");
    let keys = bucket_keys(&s3);
    assert!(!keys.contains(&v2_key), "{keys:#?}");
    assert!(!keys.contains(&bundle), "{keys:#?}");
    assert!(
        keys.contains(&v1_key),
        "the version before the current: {keys:#?}"
    );
    assert!(keys.contains(&format!("version/{v3}.wasm")), "{keys:#?}");
    assert!(
        stdout.contains(&format!("pruned s3://{BUCKET}/{v2_key}")),
        "{stdout}"
    );
    let (_, stdout, _) = cli_on(&s3, "versions", &["version"]);
    assert_eq!(
        stdout.lines().count(),
        3,
        "the current one and the one before: {stdout}"
    );
    let (code, _, stderr) = cli_on(&s3, "rollback", &["version", &v2[..8]]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no version"), "{stderr}");
    assert_eq!(lambda.call("version", Value::Null), json!("v3"));
    // Back to the newest version unlike the current: v1.
    let (code, _, stderr) = cli_on(&s3, "rollback", &["version"]);
    assert_eq!(code, 0, "{stderr}");
    eventually(Duration::from_secs(10), "v1 serving again", || {
        lambda.call("version", Value::Null) == json!("v1")
    });

    // `invoke` runs a function from the bucket as well as from a directory.
    let (code, stdout, stderr) = cli_on(&s3, "invoke", &["version"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "\"v1\"");
    let (code, _, stderr) = cli_on(&s3, "invoke", &["version", "--prefix", "nowhere"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("s3://functions/nowhere/"), "{stderr}");
}

/// Invokes `echo` with `"hi"` through the raw host call (no WASI, so it runs on the bootstrap's
/// own thread when invocations are sequential) and outputs the reply frame.
fn inviter_wat() -> String {
    format!(
        r#"(module
  (import "wasm-lambda:host/v1" "call" (func $call (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  {prelude}
  (data (i32.const 1024) "\2a\00\00\00\7b\22\6f\70\22\3a\22\66\75\6e\63\74\69\6f\6e\2e\69\6e\76\6f\6b\65\22\2c\22\66\75\6e\63\74\69\6f\6e\22\3a\22\65\63\68\6f\22\7d\22\68\69\22")
  (func (export "handle") (result i32)
    (local $off i64) (local $i i32) (local $reply i64)
    (local.set $off (call $alloc (i64.const 50)))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (i32.const 50)))
        (call $store_u8
          (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (i32.const 1024) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (local.set $reply (call $call (local.get $off)))
    (call $output_set (local.get $reply) (call $length (local.get $reply)))
    (i32.const 0)))"#,
        prelude = common::WAT_PRELUDE
    )
}

#[test]
fn a_function_invokes_another_read_from_s3_while_invocations_are_sequential() {
    // The callee must be read from the store while the caller waits: the store's client must
    // not need the thread the caller holds.
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let store = Store::new();
    store.add_wat("inviter", &inviter_wat(), "grants: {functions: [echo]}\n");
    store.add_built("echo", "echo", "callers: [inviter]\n");
    publish(&s3, store.path());
    let lambda = lambda_on(&s3, &[("REVALIDATE_AFTER", "100ms")]);
    for _ in 0..3 {
        let started = Instant::now();
        let answer = lambda.call("inviter", Value::Null);
        let text = answer.as_str().unwrap_or_default().to_string();
        assert!(
            text.contains(r#"{"ok":{}}"#) && text.ends_with(r#""hi""#),
            "{answer}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Past the trust period, so the next call reads the callee's manifest again.
        std::thread::sleep(Duration::from_millis(150));
    }
}
