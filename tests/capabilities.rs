//! Host capabilities through the real bootstrap against the local AWS-compatible server: what a
//! function's grants allow works end to end (S3, key-value, queues, topics, secrets), and
//! nothing else is reachable: other namespaces, buckets, prefixes (by any spelling), queues,
//! topics and secrets are refused with `NotGranted` or `Invalid`, sizes and call counts are
//! capped, and a service that never answers costs a `Timeout` before the deadline.

mod common;

use std::time::{Duration, Instant};

use common::{Lambda, S3Server, Store, hostile_wasm};
use serde_json::{Value, json};

/// The bucket, table, queue, topic, secret and parameter the grants below name.
struct Services {
    s3: S3Server,
    config: aws_config::SdkConfig,
    queue_url: String,
}

impl Services {
    /// The bootstrap over `store`, its capabilities acting on these services.
    fn lambda(&self, store: &Store) -> Lambda {
        let env = self.s3.aws_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Lambda::start(store.path(), &env)
    }
}

fn services() -> Services {
    let s3 = S3Server::start();
    let config = s3.sdk_config();
    s3.create_bucket("uploads");
    s3.put("uploads", "incoming/a.txt", b"hello, object");
    s3.put("uploads", "secret/x", b"top secret");
    let queue_url = common::block_on(async {
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        dynamodb
            .create_table()
            .table_name("wasm-lambda-kv")
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let queue_url = sqs
            .create_queue()
            .queue_name("jobs")
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        aws_sdk_sns::Client::new(&config)
            .create_topic()
            .name("alerts")
            .send()
            .await
            .unwrap();
        aws_sdk_secretsmanager::Client::new(&config)
            .create_secret()
            .name("stripe-key")
            .secret_string("sk_test_123")
            .send()
            .await
            .unwrap();
        aws_sdk_ssm::Client::new(&config)
            .put_parameter()
            .name("/app/db-url")
            .value("postgres://db")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
        queue_url
    });
    Services {
        s3,
        config,
        queue_url,
    }
}

/// A function running the hostile plugin's `capability` (one raw host call, or many).
fn capable(store: &Store, name: &str, grants: &str) {
    store.add_module(
        name,
        &hostile_wasm(),
        &format!("wasi: true\nentrypoint: capability\ntimeout: 5s\n{grants}"),
    );
}

const GRANTS: &str = r#"grants:
  s3:
    - {bucket: uploads, prefix: incoming/, access: read}
    - {bucket: uploads, prefix: out/, access: read-write}
  kv: [carts]
  queues: [jobs]
  topics: [alerts]
  secrets: [stripe-key, "/app/*"]
"#;

/// `op` with `args` (and a text body) through the host: the plugin's account of the reply.
fn call(lambda: &Lambda, function: &str, op: &str, args: Value, body: &str) -> Value {
    lambda.call(function, json!({"op": op, "args": args, "body": body}))
}

#[track_caller]
fn refused(reply: &Value, kind: &str, needle: &str) {
    assert_eq!(reply["error"], kind, "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{kind}: {needle:?} not in {message:?}"
    );
}

/// The trace id in the metrics line of the `n`th call of `function` (sequential calls write
/// their lines in order).
fn trace_id_of_call(lambda: &Lambda, function: &str, n: usize) -> String {
    common::eventually(Duration::from_secs(5), "the call's metrics line", || {
        lambda.metrics_of(function).len() >= n
    });
    lambda.metrics_of(function)[n - 1]["trace_id"]
        .as_str()
        .expect("a metrics line with a trace id")
        .to_string()
}

/// Whether a recorded request is the one looked for.
type RequestTest<'a> = dyn Fn(&Value) -> bool + 'a;

/// A recorded request's header `name`, in any case.
fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, value)| value.as_str())
}

#[test]
fn the_requests_of_host_calls_carry_their_invocation_trace_id() {
    let services = services();
    let store = Store::new();
    capable(&store, "capable", GRANTS);
    let lambda = services.lambda(&store);
    // The clients are made on first use: one call before the recording.
    call(
        &lambda,
        "capable",
        "kv.get",
        json!({"ns": "carts", "key": "x"}),
        "",
    );

    // Lambda follows an event through the queues a function sends to by this header (recursive
    // loop detection): each invocation's requests carry its own trace id.
    // Every service a capability reaches, each by a request of its own.
    let target = |request: &Value, target: &str| header(request, "x-amz-target") == Some(target);
    let calls: [(&str, Value, &RequestTest<'_>); 5] = [
        ("queue.send", json!({"queue": "jobs"}), &|request| {
            target(request, "AmazonSQS.SendMessage")
        }),
        ("kv.get", json!({"ns": "carts", "key": "x"}), &|request| {
            target(request, "DynamoDB_20120810.GetItem")
        }),
        (
            "s3.put",
            json!({"bucket": "uploads", "key": "out/traced.txt"}),
            &|request| {
                request["method"] == "PUT"
                    && request["url"]
                        .as_str()
                        .is_some_and(|url| url.contains("/uploads/out/traced.txt"))
            },
        ),
        ("topic.publish", json!({"topic": "alerts"}), &|request| {
            request["method"] == "POST"
                && header(request, "content-type")
                    .is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"))
        }),
        ("secret.get", json!({"name": "stripe-key"}), &|request| {
            target(request, "secretsmanager.GetSecretValue")
        }),
    ];
    for (n, (op, args, made_by)) in calls.into_iter().enumerate() {
        services.s3.start_recording();
        let reply = call(&lambda, "capable", op, args, "traced");
        assert!(
            reply.get("ok").is_some() || reply["error"] == "NotFound",
            "{op}: {reply}"
        );
        // The call before the loop was the first.
        let trace_id = trace_id_of_call(&lambda, "capable", n + 2);
        assert!(trace_id.starts_with("Root=1-"), "{trace_id}");
        let requests = services.s3.recorded();
        let request = requests
            .iter()
            .rev()
            .find(|request| made_by(request))
            .unwrap_or_else(|| panic!("no request of {op} recorded: {requests:?}"));
        assert_eq!(
            header(request, "x-amzn-trace-id"),
            Some(trace_id.as_str()),
            "{op}: {request}"
        );
    }
}

#[test]
fn granted_capabilities_work_end_to_end() {
    let services = services();
    let store = Store::new();
    capable(&store, "capable", GRANTS);
    let lambda = services.lambda(&store);
    let reply = |op, args: Value, body| call(&lambda, "capable", op, args, body);

    // S3: get (whole and a range), head, list, put, delete.
    let got = reply(
        "s3.get",
        json!({"bucket": "uploads", "key": "incoming/a.txt"}),
        "",
    );
    assert_eq!(got["body"], "hello, object", "{got}");
    let range = reply(
        "s3.get",
        json!({"bucket": "uploads", "key": "incoming/a.txt", "range": [7, 12]}),
        "",
    );
    assert_eq!(range["body"], "object", "{range}");
    let head = reply(
        "s3.head",
        json!({"bucket": "uploads", "key": "incoming/a.txt"}),
        "",
    );
    assert_eq!(head["ok"]["size"], 13, "{head}");
    let listed = reply(
        "s3.list",
        json!({"bucket": "uploads", "prefix": "incoming/"}),
        "",
    );
    assert_eq!(listed["ok"]["keys"][0]["key"], "incoming/a.txt", "{listed}");
    let put = reply(
        "s3.put",
        json!({"bucket": "uploads", "key": "out/b.txt", "content_type": "text/plain"}),
        "derived",
    );
    assert!(put.get("ok").is_some(), "{put}");
    let stored = common::block_on(
        services
            .s3
            .client()
            .get_object()
            .bucket("uploads")
            .key("out/b.txt")
            .send(),
    )
    .unwrap();
    assert_eq!(stored.content_type(), Some("text/plain"));
    let missing = reply(
        "s3.get",
        json!({"bucket": "uploads", "key": "incoming/none"}),
        "",
    );
    refused(&missing, "NotFound", "incoming/none");
    assert!(
        reply(
            "s3.delete",
            json!({"bucket": "uploads", "key": "out/b.txt"}),
            ""
        )
        .get("ok")
        .is_some()
    );
    let gone = reply(
        "s3.get",
        json!({"bucket": "uploads", "key": "out/b.txt"}),
        "",
    );
    refused(&gone, "NotFound", "out/b.txt");

    // Key-value: put, get with its version, conditional puts, increment, TTL, delete.
    let kv = |op, args: Value, body| reply(op, args, body);
    let first = kv("kv.put", json!({"ns": "carts", "key": "ada"}), "[1]");
    assert_eq!(
        first["ok"],
        json!({"stored": true, "version": 1}),
        "{first}"
    );
    let value = kv("kv.get", json!({"ns": "carts", "key": "ada"}), "");
    assert_eq!(value["body"], "[1]");
    assert_eq!(value["ok"]["version"], 1);
    let absent = kv(
        "kv.put",
        json!({"ns": "carts", "key": "ada", "if_absent": true}),
        "[2]",
    );
    assert_eq!(absent["ok"]["stored"], false, "{absent}");
    let stale = kv(
        "kv.put",
        json!({"ns": "carts", "key": "ada", "if_version": 7}),
        "[2]",
    );
    assert_eq!(stale["ok"]["stored"], false, "{stale}");
    let current = kv(
        "kv.put",
        json!({"ns": "carts", "key": "ada", "if_version": 1}),
        "[2]",
    );
    assert_eq!(
        current["ok"],
        json!({"stored": true, "version": 2}),
        "{current}"
    );
    assert_eq!(
        kv("kv.get", json!({"ns": "carts", "key": "ada"}), "")["body"],
        "[2]"
    );
    for expected in [1, 2, 5] {
        let by = if expected == 5 { 3 } else { 1 };
        let counted = kv(
            "kv.incr",
            json!({"ns": "carts", "key": "visits", "by": by}),
            "",
        );
        assert_eq!(counted["ok"]["value"], expected, "{counted}");
    }
    assert_eq!(
        kv("kv.get", json!({"ns": "carts", "key": "visits"}), "")["body"],
        "5"
    );
    let brief = kv(
        "kv.put",
        json!({"ns": "carts", "key": "brief", "ttl_seconds": 1}),
        "x",
    );
    assert_eq!(brief["ok"]["stored"], true);
    common::eventually(Duration::from_secs(10), "the value to expire", || {
        kv("kv.get", json!({"ns": "carts", "key": "brief"}), "")["error"] == "NotFound"
    });
    assert!(
        kv("kv.delete", json!({"ns": "carts", "key": "ada"}), "")
            .get("ok")
            .is_some()
    );
    refused(
        &kv("kv.get", json!({"ns": "carts", "key": "ada"}), ""),
        "NotFound",
        "ada",
    );

    // A queue and a topic.
    let sent = reply(
        "queue.send",
        json!({"queue": "jobs", "attributes": {"kind": "welcome"}}),
        r#"{"to": "ada@example.com"}"#,
    );
    assert!(
        sent["ok"]["message_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{sent}"
    );
    let received = common::block_on(
        aws_sdk_sqs::Client::new(&services.config)
            .receive_message()
            .queue_url(&services.queue_url)
            .message_attribute_names("All")
            .wait_time_seconds(5)
            .send(),
    )
    .unwrap();
    let message = &received.messages()[0];
    assert_eq!(message.body(), Some(r#"{"to": "ada@example.com"}"#));
    assert_eq!(
        message.message_attributes().unwrap()["kind"].string_value(),
        Some("welcome")
    );
    let published = reply(
        "topic.publish",
        json!({"topic": "alerts", "subject": "hi"}),
        "alert",
    );
    assert!(
        published["ok"]["message_id"].as_str().is_some(),
        "{published}"
    );

    // Secrets Manager and SSM.
    assert_eq!(
        reply("secret.get", json!({"name": "stripe-key"}), "")["body"],
        "sk_test_123"
    );
    assert_eq!(
        reply("secret.get", json!({"name": "/app/db-url"}), "")["body"],
        "postgres://db"
    );
    refused(
        &reply("secret.get", json!({"name": "/app/none"}), ""),
        "NotFound",
        "/app/none",
    );
}

#[test]
fn a_function_reaches_only_what_it_was_granted() {
    let services = services();
    let store = Store::new();
    capable(&store, "capable", GRANTS);
    capable(&store, "bare", "");
    let lambda = services.lambda(&store);
    let reply = |op, args: Value, body| call(&lambda, "capable", op, args, body);
    // Its namespace holds a value.
    assert_eq!(
        reply("kv.put", json!({"ns": "carts", "key": "k"}), "mine")["ok"]["stored"],
        true
    );
    // A namespace is its function's own: another function granted the same name has its own.
    capable(&store, "neighbour", "grants:\n  kv: [carts]\n");
    let theirs = call(
        &lambda,
        "neighbour",
        "kv.get",
        json!({"ns": "carts", "key": "k"}),
        "",
    );
    refused(&theirs, "NotFound", "no key `k`");
    assert!(
        call(
            &lambda,
            "neighbour",
            "kv.delete",
            json!({"ns": "carts", "key": "k"}),
            ""
        )
        .get("ok")
        .is_some()
    );
    assert_eq!(
        reply("kv.get", json!({"ns": "carts", "key": "k"}), "")["body"],
        "mine"
    );
    // SSM's reserved `/aws/` names (which read Secrets Manager secrets) are not under `/*`.
    capable(&store, "wide", "grants:\n  secrets: [\"/*\"]\n");
    let reference = call(
        &lambda,
        "wide",
        "secret.get",
        json!({"name": "/aws/reference/secretsmanager/stripe-key"}),
        "",
    );
    refused(&reference, "NotGranted", "AWS-reserved");

    for (args, op, kind, needle) in [
        // Another bucket, another prefix, a sibling prefix, writing under a read grant.
        (
            json!({"bucket": "other", "key": "incoming/a.txt"}),
            "s3.get",
            "NotGranted",
            "bucket: other",
        ),
        (
            json!({"bucket": "uploads", "key": "secret/x"}),
            "s3.get",
            "NotGranted",
            "s3: {bucket: uploads",
        ),
        (
            json!({"bucket": "uploads", "key": "incomingX/a"}),
            "s3.get",
            "NotGranted",
            "allows s3.get",
        ),
        (
            json!({"bucket": "uploads", "key": "incoming/a.txt"}),
            "s3.put",
            "NotGranted",
            "access: write",
        ),
        (
            json!({"bucket": "uploads", "key": "incoming/a.txt"}),
            "s3.delete",
            "NotGranted",
            "access: write",
        ),
        (
            json!({"bucket": "uploads", "prefix": ""}),
            "s3.list",
            "NotGranted",
            "allows s3.list",
        ),
        (
            json!({"bucket": "uploads", "prefix": "inc"}),
            "s3.list",
            "NotGranted",
            "allows s3.list",
        ),
        // Traversal, by every spelling an intermediary could resolve.
        (
            json!({"bucket": "uploads", "key": "incoming/../secret/x"}),
            "s3.get",
            "Invalid",
            "`..`",
        ),
        (
            json!({"bucket": "uploads", "key": "out/../secret/x"}),
            "s3.put",
            "Invalid",
            "`..`",
        ),
        (
            json!({"bucket": "uploads", "key": "incoming/./../secret/x"}),
            "s3.get",
            "Invalid",
            "`..`",
        ),
        (
            json!({"bucket": "uploads", "key": "incoming/..\\secret/x"}),
            "s3.get",
            "Invalid",
            "`\\`",
        ),
        (
            json!({"bucket": "uploads", "key": "incoming/\u{0}x"}),
            "s3.get",
            "Invalid",
            "control",
        ),
        (
            json!({"bucket": "uploads", "prefix": "incoming/../"}),
            "s3.list",
            "Invalid",
            "`..`",
        ),
        // Other namespaces, queues, topics, secrets.
        (
            json!({"ns": "sessions", "key": "k"}),
            "kv.get",
            "NotGranted",
            "kv: [sessions]",
        ),
        (
            json!({"ns": "carts/../sessions", "key": "k"}),
            "kv.get",
            "NotGranted",
            "kv:",
        ),
        (
            json!({"queue": "other"}),
            "queue.send",
            "NotGranted",
            "queues: [other]",
        ),
        (
            json!({"topic": "other"}),
            "topic.publish",
            "NotGranted",
            "topics: [other]",
        ),
        (
            json!({"name": "other-key"}),
            "secret.get",
            "NotGranted",
            "secrets: [other-key]",
        ),
        (
            json!({"name": "/apps/x"}),
            "secret.get",
            "NotGranted",
            "/apps/x",
        ),
        (json!({"name": "/app"}), "secret.get", "NotGranted", "/app"),
        // Requests the host does not know.
        (json!({}), "s3.copy", "Invalid", "not an operation"),
        (
            json!({"bucket": "uploads", "key": "incoming/a.txt", "as": "root"}),
            "s3.get",
            "Invalid",
            "not valid",
        ),
    ] {
        let got = reply(op, args.clone(), "");
        refused(&got, kind, needle);
    }
    // An encoded traversal is only a strange key under the prefix: it never reads another.
    let encoded = reply(
        "s3.get",
        json!({"bucket": "uploads", "key": "incoming/%2e%2e/secret/x"}),
        "",
    );
    refused(&encoded, "NotFound", "incoming/%2e%2e/secret/x");
    // A function without grants can do none of it.
    for (op, args) in [
        (
            "s3.get",
            json!({"bucket": "uploads", "key": "incoming/a.txt"}),
        ),
        ("kv.get", json!({"ns": "carts", "key": "k"})),
        ("queue.send", json!({"queue": "jobs"})),
        ("topic.publish", json!({"topic": "alerts"})),
        ("secret.get", json!({"name": "stripe-key"})),
    ] {
        refused(
            &call(&lambda, "bare", op, args, "x"),
            "NotGranted",
            "no grant",
        );
    }
    lambda.wait_for_log("host call refused", Duration::from_secs(5));

    // Sizes: a value, an object, a message past their caps.
    let huge = lambda.call(
        "capable",
        json!({"op": "kv.put", "args": {"ns": "carts", "key": "big"}, "body_bytes": 400 * 1024}),
    );
    refused(&huge, "TooLarge", "larger than");
    let object = lambda.call(
        "capable",
        json!({"op": "s3.put", "args": {"bucket": "uploads", "key": "out/big"}, "body_bytes": 17 * 1024 * 1024}),
    );
    refused(&object, "TooLarge", "larger than");
    let message = lambda.call(
        "capable",
        json!({"op": "queue.send", "args": {"queue": "jobs"}, "body_bytes": 300 * 1024}),
    );
    refused(&message, "TooLarge", "larger than");

    // A runaway loop of host calls is cut off; the next invocation has its full allowance.
    // (A secret is read once and then reused, so the loop costs no service calls.)
    let runaway = lambda.call(
        "capable",
        json!({"op": "secret.get", "args": {"name": "stripe-key"}, "repeat": 1001}),
    );
    refused(&runaway, "LimitExceeded", "at most 1000 host calls");
    let after = reply("kv.get", json!({"ns": "carts", "key": "k"}), "");
    assert_eq!(after["body"], "mine", "{after}");

    // A frame that is not one.
    let garbage = lambda.call("capable", json!({"frame": "\u{5}\u{0}\u{0}\u{0}{"}));
    refused(&garbage, "Invalid", "header");
}

#[test]
fn a_service_that_never_answers_costs_a_timeout_before_the_deadline() {
    // Accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    let store = Store::new();
    store.add_module(
        "waiting",
        &hostile_wasm(),
        &format!("wasi: true\nentrypoint: capability\ntimeout: 2s\n{GRANTS}"),
    );
    let lambda = Lambda::start(
        store.path(),
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let started = Instant::now();
    let reply = call(
        &lambda,
        "waiting",
        "kv.get",
        json!({"ns": "carts", "key": "k"}),
        "",
    );
    refused(&reply, "Timeout", "time ran out");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered within the function's timeout: {:?}",
        started.elapsed()
    );
    // The next invocation works (and fails the same way, promptly).
    let again = call(
        &lambda,
        "waiting",
        "secret.get",
        json!({"name": "stripe-key"}),
        "",
    );
    refused(&again, "Timeout", "time ran out");
    drop(hole);
}

#[test]
fn the_example_functions_act_through_their_grants() {
    // `make run`'s loop: the examples' store, provisioned on the local server.
    let aws = S3Server::start();
    let functions = std::path::Path::new(common::ROOT).join("functions");
    aws.provision(&functions, &[]);
    let env = aws.aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lambda = Lambda::start(&functions, &env);

    // hello counts visits per name in its `visits` namespace.
    for visit in 1..=2 {
        let (status, _, body) = lambda.url("GET", "/hello/ada", None);
        assert_eq!(
            (status, body),
            (200, format!("Hello, ada! (visit {visit})\n")),
            "{}",
            lambda.logs()
        );
    }
    assert_eq!(
        lambda.url("GET", "/hello/grace", None).2,
        "Hello, grace! (visit 1)\n"
    );
    // Its metrics lines count the host call, per capability.
    common::eventually(Duration::from_secs(5), "hello's metrics lines", || {
        lambda.metrics_of("hello").len() == 3
    });
    let line = lambda.metrics_of("hello").pop().unwrap();
    assert_eq!(line["host_calls"], 1, "{line}");
    assert_eq!(line["host"]["kv"]["calls"], 1, "{line}");
    assert!(line["host"]["kv"]["ms"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["host_ms"].as_f64().unwrap() <= line["call_ms"].as_f64().unwrap());
}

#[test]
fn functions_invoke_each_other_with_their_own_grants_and_a_bounded_depth() {
    let services = services();
    let store = Store::new();
    capable(
        &store,
        "caller",
        "callers: [caller]\ngrants:\n  kv: [carts]\n  functions: [callee, caller, echo, ghost, spender, private]\n",
    );
    capable(&store, "callee", "callers: [caller]\n");
    capable(
        &store,
        "spender",
        "callers: [caller]\ngrants:\n  secrets: [stripe-key]\n",
    );
    // Granted to the caller, but it does not accept the caller.
    capable(&store, "private", "");
    store.add_built("echo", "echo", "callers: [caller]\n");
    let lambda = services.lambda(&store);
    let invoke = |function: &str, input: &str| {
        call(
            &lambda,
            "caller",
            "function.invoke",
            json!({"function": function}),
            input,
        )
    };

    // In process, input in and output out.
    assert_eq!(invoke("echo", r#"{"ping": 1}"#)["body"], r#"{"ping": 1}"#);
    // The callee acts with its own grants, never the caller's.
    let inner = json!({"op": "kv.get", "args": {"ns": "carts", "key": "k"}}).to_string();
    let reply = invoke("callee", &inner);
    let callee: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    refused(&callee, "NotGranted", "kv: [carts]");
    // Only granted functions, and only ones that exist.
    refused(&invoke("other", ""), "NotGranted", "functions: [other]");
    refused(&invoke("ghost", ""), "NotFound", "ghost");
    // And only functions that name the caller among their `callers`.
    refused(
        &invoke("private", ""),
        "NotGranted",
        "does not list `caller` in its `callers`",
    );

    // A loop of invocations stops at the depth limit, each level answering the one above.
    let mut request = json!({"op": "kv.get", "args": {"ns": "carts", "key": "k"}});
    for _ in 0..12 {
        request = json!({
            "op": "function.invoke",
            "args": {"function": "caller"},
            "body": request.to_string(),
        });
    }
    let mut reply = lambda.call("caller", request);
    let mut depth = 0;
    while reply.get("ok").is_some() {
        reply = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
        depth += 1;
    }
    refused(&reply, "LimitExceeded", "at most 8 deep");
    assert_eq!(depth, 8, "{reply}");
    // Invoked functions share the invocation's allowance of host calls: two callees of 600
    // calls each cannot make 1,200.
    let spend = json!({"op": "secret.get", "args": {"name": "stripe-key"}, "repeat": 600});
    let reply = lambda.call(
        "caller",
        json!({"op": "function.invoke", "args": {"function": "spender"}, "body": spend.to_string(), "repeat": 2}),
    );
    let second: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    refused(&second, "LimitExceeded", "at most 1000 host calls");

    // And the next invocation works.
    assert_eq!(invoke("echo", "\"again\"")["body"], "\"again\"");
}

#[test]
fn no_grant_reaches_the_function_store_bucket() {
    // The store's bucket holds every function's code and the native code the bootstrap loads
    // (`_compiled/`), and the bootstrap's role may read and write it: a grant naming it, by its
    // own name or a SOURCE_NAMES alias, must not turn that into a function's access.
    let aws = S3Server::start();
    aws.create_bucket("functions");
    let store = Store::new();
    capable(
        &store,
        "greedy",
        "grants:\n  s3:\n    - {bucket: functions, access: read-write}\n    - {bucket: store, access: read-write}\n",
    );
    let (ok, stdout, stderr) = aws.publish("functions", &[store.path().to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let env = aws.aws_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("FUNCTIONS_BUCKET", "functions"));
    env.push(("SOURCE_NAMES", "store=functions"));
    let lambda = Lambda::launch(&env);
    for bucket in ["functions", "store"] {
        for (op, args) in [
            (
                "s3.get",
                json!({"bucket": bucket, "key": "greedy/manifest.yaml"}),
            ),
            ("s3.list", json!({"bucket": bucket, "prefix": ""})),
            (
                "s3.put",
                json!({"bucket": bucket, "key": "_compiled/planted"}),
            ),
            (
                "s3.delete",
                json!({"bucket": bucket, "key": "greedy/manifest.yaml"}),
            ),
        ] {
            let reply = call(&lambda, "greedy", op, args, "native code");
            refused(&reply, "NotGranted", "the function store's");
        }
    }
    assert!(aws.get("functions", "_compiled/planted").is_none());
    assert!(aws.get("functions", "greedy/manifest.yaml").is_some());
}
