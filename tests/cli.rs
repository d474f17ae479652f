//! The developer CLI on real function crates: validate, build (and --watch hot reload through
//! the Lambda Runtime API emulator), invoke, routes, new, and --help everywhere.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Lambda, ROOT, Store, constant_plugin, eventually};
use serde_json::{Value, json};

/// Runs `wasm-lambda args...` in the project root: (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
        .args(args)
        .current_dir(ROOT)
        .env_remove("FUNCTIONS_DIR")
        .env_remove("RUST_LOG")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Copies an example function, with its build output, into `store`.
fn copy_function(name: &str, store: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(Path::new(ROOT).join("functions").join(name))
        .arg(store)
        .status()
        .unwrap();
    assert!(status.success());
    // The copy names the guest SDK where it is, not relative to `functions/`.
    let cargo = store.join(name).join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo).unwrap();
    let sdk = Path::new(ROOT).join("sdk");
    std::fs::write(
        &cargo,
        text.replace("\"../../sdk\"", &format!("{:?}", sdk.to_str().unwrap())),
    )
    .unwrap();
}

#[test]
fn validate_passes_the_examples_against_the_template() {
    let (code, stdout, stderr) = cli(&["validate", "functions"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for name in [
        "echo",
        "hello",
        "job-worker",
        "nightly",
        "on-upload",
        "on-user-insert",
    ] {
        assert!(stdout.contains(&format!("{name}: ok")), "{name}: {stdout}");
    }
}

#[test]
fn validate_reports_every_problem_at_once_with_its_file() {
    let store = Store::new();
    store.add_built("fine", "echo", "");
    store.add(
        "broken",
        "name: broken\nruntime: wasm\ntimeout: soon\n",
        None,
    );
    store.add("absent", "name: absent\nruntime: wasm\n", None);
    store.add_wat("no-entry", &constant_plugin("x"), "entrypoint: go\n");
    store.add_wat(
        "first",
        &constant_plugin("1"),
        "hooks:\n  - {type: http, method: GET, path: /same}\n",
    );
    store.add_wat(
        "second",
        &constant_plugin("2"),
        "hooks:\n  - {type: http, method: GET, path: /same}\n",
    );
    store.add_wat(
        "mailer",
        &constant_plugin("3"),
        "hooks:\n  - {type: sqs, queue: emails}\n",
    );
    store.add_wat(
        "granted",
        &constant_plugin("4"),
        "grants:\n  s3: [{bucket: uploads, access: read}, {bucket: photos, access: read}]\n  queues: [jobs, emails]\n  topics: [alerts]\n  kv: [visits]\n",
    );
    let dir = store.path().to_str().unwrap();

    let (code, stdout, stderr) = cli(&["validate", dir, "--template", "template.yaml"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("fine: ok"), "{stdout}");
    for expected in [
        "broken: ",
        "broken/manifest.yaml: timeout: `soon`",
        "absent: ",
        "absent/absent.wasm does not exist",
        "no-entry: ",
        "entrypoint `go` is not an exported function of the module",
        "second: ",
        "second/manifest.yaml: route GET /same -> second conflicts with GET /same -> first",
        "mailer: ",
        "mailer/manifest.yaml: hooks[0]: template.yaml delivers no sqs source named `emails`",
        // Grants name what the template defines, by its own name or a SOURCE_NAMES entry.
        "granted/manifest.yaml: grants.s3[1].bucket: template.yaml: the template defines no bucket `photos`",
        "granted/manifest.yaml: grants.queues[1]: template.yaml: the template defines no queue `emails`",
        "granted/manifest.yaml: grants.topics[0]: template.yaml: the template defines no topic `alerts`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }

    for granted in ["grants.s3[0]", "grants.queues[0]", "grants.kv"] {
        assert!(!stderr.contains(granted), "{granted} is defined: {stderr}");
    }

    // Without a template, hooks and grants are not checked against one.
    let (_, _, stderr) = cli(&["validate", dir, "--no-template"]);
    assert!(!stderr.contains("mailer"), "{stderr}");
    assert!(!stderr.contains("granted"), "{stderr}");
    let (code, _, stderr) = cli(&["validate", "/no/such/dir"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn build_runs_each_manifest_build_and_checks_its_output() {
    let store = Store::new();
    copy_function("hello", store.path());
    let dir = store.path().to_str().unwrap();
    let (code, stdout, stderr) = cli(&["build", dir]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("built hello in"), "{stdout}");

    store.add(
        "no-output",
        "name: no-output\nruntime: wasm\nbuild: {command: \"true\", output: out.wasm}\n",
        None,
    );
    store.add(
        "fails",
        "name: fails\nruntime: wasm\nbuild: {command: \"false\"}\n",
        None,
    );
    let (code, _, stderr) = cli(&["build", dir]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no-output: the build succeeded but build.output")
            && stderr.contains("out.wasm does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("fails: `false ` failed"), "{stderr}");
}

#[test]
fn invoke_runs_a_function_as_the_bootstrap_would() {
    let (code, stdout, stderr) = cli(&["invoke", "echo", "--input", r#"{"a": [1, 2]}"#]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        json!({"a": [1, 2]})
    );
    assert!(
        stderr.contains("compiled function function=echo"),
        "logs go to stderr: {stderr}"
    );
    // A local directory keeps no compiled artifacts for a fleet.
    assert!(!stderr.contains("shared with the fleet"), "{stderr}");

    let (code, stdout, _) = cli(&[
        "invoke",
        "hello",
        "--event",
        "tests/fixtures/events/apigw-v2-get-hello.json",
    ]);
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (answer["statusCode"].clone(), answer["body"].clone()),
        (json!(200), json!("Hello, ada!\n"))
    );

    // job-worker records results in its key-value namespace: on the local AWS-compatible
    // server, provisioned as `make run` does.
    let aws = common::S3Server::start();
    aws.provision(&Path::new(ROOT).join("functions"), &[]);
    let output = Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
        .args(["invoke", "job-worker", "--event"])
        .arg("tests/fixtures/events/sqs-poison.json")
        .current_dir(ROOT)
        .env_remove("FUNCTIONS_DIR")
        .envs(aws.aws_env())
        .output()
        .unwrap();
    let (code, stdout) = (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "msg-2"}, {"itemIdentifier": "msg-4"}]})
    );

    // With --event only the function named runs: echo has no HTTP hook.
    let (_, stdout, _) = cli(&[
        "invoke",
        "echo",
        "--event",
        "tests/fixtures/events/apigw-v2-get-hello.json",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["statusCode"],
        404
    );

    let (code, stdout, _) = cli(&["invoke", "nobody"]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["errorType"],
        "FunctionNotFound"
    );
    let (code, _, stderr) = cli(&["invoke", "echo", "--input", "not json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--input is not JSON"), "{stderr}");
    // The flag the user gave is the one named, not a variable they never set.
    let (code, _, stderr) = cli(&["invoke", "echo", "--dir", "/nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--dir /nope: not a directory"), "{stderr}");
    assert!(!stderr.contains("FUNCTIONS_DIR"), "{stderr}");
}

#[test]
fn routes_prints_the_routing_table() {
    let (code, stdout, stderr) = cli(&["routes", "functions"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows[0], ["HOOK", "MATCH", "FUNCTION", "ENTRYPOINT"]);
    for row in [
        vec!["http", "GET /hello/{name}", "hello", "handle"],
        vec![
            "s3",
            "bucket uploads, prefix incoming/, ObjectCreated:*",
            "on-upload",
            "handle",
        ],
        vec!["sqs", "queue jobs", "job-worker", "handle"],
        vec![
            "database",
            "table users, insert",
            "on-user-insert",
            "handle",
        ],
        vec!["schedule", "rule nightly", "nightly", "handle"],
        vec!["websocket", "route $connect", "chat", "handle"],
        vec!["websocket", "route $default", "chat", "handle"],
        vec!["authorizer", "any api", "gatekeeper", "handle"],
    ] {
        assert!(rows.contains(&row), "{row:?} in\n{stdout}");
    }
    // Kinds are listed in one order: HTTP, then the other request kinds, then the batch kinds.
    let position = |kind: &str| rows.iter().position(|row| row[0] == kind).unwrap();
    assert!(position("http") < position("websocket"));
    assert!(position("websocket") < position("authorizer"));
    assert!(position("authorizer") < position("s3"));
}

#[test]
fn validate_checks_every_kind_sam_declares_against_the_template() {
    let store = Store::new();
    store.add_wat(
        "streams",
        &constant_plugin("1"),
        "hooks:\n  - {type: kafka, topic: orders}\n  - {type: mq, queue: orders}\n  - {type: logs, log_group: /aws/lambda/orders}\n  - {type: cognito, trigger: \"PreSignUp_*\"}\n",
    );
    store.add_wat(
        "elsewhere",
        &constant_plugin("2"),
        "hooks:\n  - {type: websocket, route: $connect}\n  - {type: authorizer, api: a1}\n  - {type: appsync, field: Query.getPost}\n  - {type: custom_resource, resource_type: Custom::Thing}\n  - {type: raw, match: {/kind: \"*\"}}\n",
    );
    store.add_wat(
        "bad-hooks",
        &constant_plugin("3"),
        "hooks:\n  - {type: appsync, field: getPost}\n  - {type: raw, match: {kind: x}}\n  - {type: custom_resource, resource_type: Thing}\n  - {type: cognito, trigger: \"[\"}\n  - {type: websocket, route: $connect, verb: GET}\n",
    );
    let dir = store.path().to_str().unwrap();
    let (code, stdout, stderr) = cli(&["validate", dir, "--template", "template.yaml"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    // SAM declares these on the function: the template must deliver them.
    for expected in [
        "streams/manifest.yaml: hooks[0]: template.yaml delivers no kafka source named `orders`",
        "streams/manifest.yaml: hooks[1]: template.yaml delivers no mq source named `orders`",
        "streams/manifest.yaml: hooks[2]: template.yaml delivers no logs source named `/aws/lambda/orders`",
        "streams/manifest.yaml: hooks[3]: template.yaml gives the bootstrap no Cognito user pool trigger",
        "bad-hooks/manifest.yaml: hooks[0].field: `getPost` must be `Type.field`",
        "bad-hooks/manifest.yaml: hooks[1].match.kind: `kind` is not a JSON pointer",
        "bad-hooks/manifest.yaml: hooks[2].resource_type: `Thing` must be `Custom::Name`",
        "bad-hooks/manifest.yaml: hooks[3].trigger: `[` is not a glob",
        "bad-hooks/manifest.yaml: hooks[4].verb: unknown field `verb`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    // SAM declares these elsewhere (an API's routes and authorizers, AppSync, a stack's
    // resources): nothing to check them against.
    assert!(stdout.contains("elsewhere: ok"), "{stdout}\n{stderr}");
}

#[test]
fn new_scaffolds_a_function_that_builds_validates_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = cli(&["new", "greeter", "--dir", root]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("created"), "{stdout}");
    let (code, _, stderr) = cli(&["new", "greeter", "--dir", root]);
    assert_eq!(code, 2);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) = cli(&["new", "Not A Name", "--dir", root]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is not a function name"), "{stderr}");

    let (code, stdout, stderr) = cli(&["build", root]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = cli(&["validate", root]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("greeter: ok"), "{stdout}");

    let mut event: Value = common::event("apigw-v2-get-hello.json");
    event["rawPath"] = json!("/greeter");
    event["requestContext"]["http"]["path"] = json!("/greeter");
    let file = dir.path().join("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let (code, stdout, stderr) = cli(&[
        "invoke",
        "greeter",
        "--dir",
        root,
        "--event",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert!(
        answer["body"]
            .as_str()
            .unwrap()
            .contains(r#""function":"greeter""#)
    );

    // The scaffold links the guest SDK: a panic's message reaches the caller, with no call
    // to install anything (wasm32-unknown-unknown runs the SDK's `_initialize`).
    let source = dir.path().join("greeter/src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let text = text.replacen(
        "info!(",
        "let _: u32 = request.path.parse().expect(\"a numeric path\");\n    info!(",
        1,
    );
    std::fs::write(&source, text).unwrap();
    let (code, stdout, stderr) = cli(&["build", root]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) = cli(&[
        "invoke",
        "greeter",
        "--dir",
        root,
        "--event",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "an HTTP answer: {stdout}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["statusCode"], 500, "{answer}");
    let (code, stdout, _) = cli(&["invoke", "greeter", "--dir", root, "--input", "{}"]);
    assert_eq!(code, 1);
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["errorType"], "FunctionTrap", "{answer}");
    let message = answer["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("panicked at src/lib.rs:") && message.contains("a numeric path"),
        "{message}"
    );
}

#[test]
fn every_command_has_help_and_documents_exit_codes() {
    for command in [
        vec!["--help"],
        vec!["validate", "--help"],
        vec!["build", "--help"],
        vec!["invoke", "--help"],
        vec!["routes", "--help"],
        vec!["new", "--help"],
        vec!["publish", "--help"],
        vec!["prune", "--help"],
        vec!["versions", "--help"],
        vec!["rollback", "--help"],
        vec!["policy", "--help"],
        vec!["provision", "--help"],
    ] {
        let (code, stdout, _) = cli(&command);
        assert_eq!(code, 0, "{command:?}");
        assert!(
            stdout.contains("Exit codes: 0 success"),
            "{command:?}: {stdout}"
        );
    }
    let (code, _, _) = cli(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn an_edit_is_served_on_the_next_request_without_restarting_anything() {
    let store = Store::new();
    copy_function("hello", store.path());
    copy_function("echo", store.path());
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_wasm-lambda"))
        .args(["build", "--watch"])
        .arg(store.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = common::collect(&mut watcher);
    eventually(Duration::from_secs(120), "the first build", || {
        output.lock().unwrap().contains("watching")
    });

    let lambda = Lambda::start(store.path(), &[]);
    let pid = lambda.bootstrap_pid();
    assert_eq!(lambda.url("GET", "/hello/world", None).2, "Hello, world!\n");

    let source = store.path().join("hello/src/lib.rs");
    let edited = std::fs::read_to_string(&source).unwrap().replace(
        r#"format!("{greeting}, {name}!\n")"#,
        r#"format!("{greeting}, {name}! (edited)\n")"#,
    );
    assert!(edited.contains("(edited)"));
    std::fs::write(&source, edited).unwrap();
    eventually(Duration::from_secs(120), "the rebuild", || {
        output.lock().unwrap().contains("rebuilt hello")
    });

    assert_eq!(
        lambda.url("GET", "/hello/world", None).2,
        "Hello, world! (edited)\n",
        "{}",
        output.lock().unwrap()
    );
    assert_eq!(
        lambda.bootstrap_pid(),
        pid,
        "the bootstrap was not restarted"
    );
    assert_eq!(lambda.logs().matches("catalog loaded").count(), 1);

    // The rebuild's own reads of its sources, reading a watched file, touching one: no content
    // changed, no rebuild. An edit of another function after them is handled after them (events
    // are handled in order): once it is rebuilt, hello has been rebuilt once, for its edit.
    let _ = std::fs::read(store.path().join("hello/Cargo.toml")).unwrap();
    let touched = std::fs::File::options().append(true).open(&source).unwrap();
    touched.set_modified(std::time::SystemTime::now()).unwrap();
    drop(touched);
    let marker = store.path().join("echo/src/lib.rs");
    let mut code = std::fs::read_to_string(&marker).unwrap();
    code.push_str("\n// edited\n");
    std::fs::write(&marker, code).unwrap();
    eventually(Duration::from_secs(120), "echo rebuilt", || {
        output.lock().unwrap().contains("rebuilt echo")
    });
    assert_eq!(
        output.lock().unwrap().matches("rebuilding hello").count(),
        1,
        "{}",
        output.lock().unwrap()
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
}

#[test]
fn policy_prints_exactly_what_the_examples_grants_need() {
    let (code, stdout, stderr) = cli(&["policy", "functions"]);
    assert_eq!(code, 0, "{stderr}");
    let policy: Value = serde_json::from_str(&stdout).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let allowing = |action: &str| -> Vec<&Value> {
        statements
            .iter()
            .filter(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
            .collect()
    };
    assert_eq!(
        allowing("s3:GetObject")[0]["Resource"],
        json!(["arn:aws:s3:::uploads/incoming/*"])
    );
    assert_eq!(
        allowing("s3:PutObject")[0]["Resource"],
        json!(["arn:aws:s3:::uploads/thumbnails/*"])
    );
    assert_eq!(
        allowing("dynamodb:UpdateItem")[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
        json!(["hello/visits", "job-worker/results"])
    );
    assert_eq!(
        allowing("sqs:SendMessage")[0]["Resource"],
        json!(["arn:aws:sqs:*:*:jobs"])
    );
    // Nothing else: no topic, no secret.
    assert!(
        allowing("sns:Publish").is_empty() && allowing("secretsmanager:GetSecretValue").is_empty()
    );
}
