//! Every record source (S3, SQS, SNS, DynamoDB Streams, Kinesis, EventBridge, schedules) through
//! the real bootstrap under the Lambda Runtime API emulator, with the event fixtures in
//! `tests/fixtures/events/` and the example functions: fan-out, exact `batchItemFailures`,
//! failed invocations for asynchronous sources, records no function is hooked to, and records
//! the deadline leaves no time for.

mod common;

use std::time::{Duration, Instant};

use common::{Lambda, Reaction, S3Server, Store, assert_error, event, reacting_to};
use serde_json::{Value, json};

/// The example functions with their own manifests, plus functions that fan out, fail or spin.
fn store() -> Store {
    let store = Store::new();
    for name in ["on-upload", "job-worker", "on-user-insert"] {
        let manifest =
            std::fs::read_to_string(format!("{}/functions/{name}/manifest.yaml", common::ROOT))
                .unwrap();
        let module = std::fs::read(common::built_function(name)).unwrap();
        // The manifest names the build output; point it at the copied module.
        store.add(
            name,
            &format!("{manifest}module: {name}.wasm\n"),
            Some(&module),
        );
    }
    store.add_built(
        "audit",
        "echo",
        "hooks:\n  - {type: s3, bucket: uploads}\n  - {type: sns, topic: alerts}\n",
    );
    store.add_built(
        "fifo-worker",
        "job-worker",
        "grants: {kv: [results]}\nhooks:\n  - {type: sqs, queue: jobs.fifo}\n",
    );
    store.add_built(
        "user-sync",
        "echo",
        "hooks:\n  - {type: database, source: users, action: [update, delete]}\n",
    );
    store.add_wat(
        "clicks",
        &reacting_to("\"is_base64_encoded\":true", Reaction::Fail),
        "hooks:\n  - {type: stream, stream: clicks}\n",
    );
    store.add_built(
        "nightly",
        "echo",
        "hooks:\n  - {type: schedule, rule: nightly}\n",
    );
    store.add_built(
        "orders",
        "echo",
        "hooks:\n  - {type: event, source: com.example.orders, detail_type: OrderPlaced}\n",
    );
    store
}

/// The local AWS-compatible server with what the store's grants and hooks name (under the
/// deployed names `source_names` gives, if any), and the uploads the S3 fixtures announce.
fn aws(store: &Store, source_names: Option<&str>) -> S3Server {
    let aws = S3Server::start();
    let extra: Vec<(&str, &str)> = source_names
        .map(|n| ("SOURCE_NAMES", n))
        .into_iter()
        .collect();
    aws.provision(store.path(), &extra);
    let bucket = source_names
        .and_then(|names| names.split(',').find_map(|p| p.strip_prefix("uploads=")))
        .unwrap_or("uploads");
    for key in ["incoming/a b/c.png", "incoming/photo.png"] {
        aws.put(bucket, key, format!("image bytes of {key}").as_bytes());
    }
    aws
}

/// The bootstrap over `store`, its capabilities at `aws`, with `extra` environment.
fn start_on(store: &Store, aws: &S3Server, extra: &[(&str, &str)]) -> Lambda {
    let env = aws.aws_env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("RUST_LOG", "info,wasm_lambda=debug"));
    all.extend_from_slice(extra);
    Lambda::start(store.path(), &all)
}

fn start(store: &Store) -> (Lambda, S3Server) {
    let aws = aws(store, None);
    (start_on(store, &aws, &[]), aws)
}

fn failures(ids: &[&str]) -> Value {
    let items: Vec<Value> = ids.iter().map(|id| json!({"itemIdentifier": id})).collect();
    json!({ "batchItemFailures": items })
}

/// The lines the bootstrap logged for records delivered to `function`, once there are
/// `expected` of them (log lines can trail the answer by a moment); fails if there are more.
fn delivered(lambda: &Lambda, function: &str, expected: usize) -> Vec<String> {
    let lines = || -> Vec<String> {
        lambda
            .logs()
            .lines()
            .filter(|line| {
                line.contains("record delivered") && line.contains(&format!("function={function} "))
            })
            .map(str::to_string)
            .collect()
    };
    common::eventually(Duration::from_secs(5), "the delivery log", || {
        lines().len() >= expected
    });
    let lines = lines();
    assert_eq!(lines.len(), expected, "{function}: {lines:#?}");
    lines
}

#[test]
fn s3_notifications_fan_out_with_decoded_keys() {
    let store = store();
    let (lambda, aws) = start(&store);

    assert_eq!(
        lambda.invoke(&event("s3-put-encoded-key.json")),
        Value::Null
    );
    let upload = delivered(&lambda, "on-upload", 1);
    assert!(
        upload[0].contains(r#""key":"incoming/a b/c.png""#),
        "{}",
        upload[0]
    );
    // It read the object and wrote what it derived under thumbnails/, through its grants.
    let derived = aws
        .get("uploads", "thumbnails/c.png.json")
        .expect("the derived object");
    let derived: Value = serde_json::from_slice(&derived).unwrap();
    assert_eq!(derived["source"], "incoming/a b/c.png");
    let object = "image bytes of incoming/a b/c.png";
    assert_eq!(derived["bytes"], object.len());
    assert_eq!(derived["head"], &object[..32], "its first 32 bytes");

    // A put under incoming/, a delete, and a put elsewhere: on-upload takes only the first,
    // audit (the whole bucket) all three.
    assert_eq!(lambda.invoke(&event("s3-batch.json")), Value::Null);
    delivered(&lambda, "on-upload", 2);
    delivered(&lambda, "audit", 4);

    // A bucket nothing is hooked to fails the invocation, so S3's retry and failure
    // destinations keep the event.
    let mut other = event("s3-put-encoded-key.json");
    other["Records"][0]["s3"]["bucket"]["name"] = json!("other-bucket");
    assert_error(
        &lambda.invoke(&other),
        "FunctionNotFound",
        "no function is hooked to s3 ObjectCreated:Put s3://other-bucket/incoming/a b/c.png",
    );
    lambda.wait_for_log("other-bucket", Duration::from_secs(5));
}

#[test]
fn sqs_batches_report_exactly_the_failed_messages() {
    let store = store();
    let (lambda, aws) = start(&store);

    assert_eq!(lambda.invoke(&event("sqs-batch.json")), failures(&[]));
    delivered(&lambda, "job-worker", 3);
    // Each job's result is in the `results` namespace, under its message id.
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws.sdk_config());
    for id in ["msg-1", "msg-2", "msg-3"] {
        let item = common::block_on(
            dynamodb
                .get_item()
                .table_name("wasm-lambda-kv")
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S("job-worker/results".into()),
                )
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
                .send(),
        )
        .unwrap();
        let value = item.item().and_then(|item| item.get("value")).cloned();
        let value = value.and_then(|v| v.as_b().ok().map(|b| b.as_ref().to_vec()));
        let result: Value = serde_json::from_slice(&value.expect(id)).unwrap();
        assert_eq!(result["queue"], "jobs", "{result}");
    }

    assert_eq!(
        lambda.invoke(&event("sqs-poison.json")),
        failures(&["msg-2", "msg-4"])
    );
    lambda.wait_for_log("cannot process message", Duration::from_secs(5));

    // A FIFO queue stops at the first failure: msg-3 must not overtake msg-2.
    assert_eq!(
        lambda.invoke(&event("sqs-fifo-poison.json")),
        failures(&["msg-2", "msg-3"])
    );
    delivered(&lambda, "fifo-worker", 1);

    // A queue nothing is hooked to: the message is reported failed, never dropped.
    assert_eq!(
        lambda.invoke(&event("sqs-unhooked-queue.json")),
        failures(&["MessageID_1"])
    );
    lambda.wait_for_log(
        "no function is hooked to sqs queue `SQSQueue` record MessageID_1",
        Duration::from_secs(5),
    );
}

#[test]
fn sns_notifications_fail_the_invocation_when_a_function_fails() {
    let store = store();
    store.add_wat(
        "pager",
        &reacting_to("95% full", Reaction::Fail),
        "hooks:\n  - {type: sns, topic: alerts}\n",
    );
    let (lambda, _aws) = start(&store);

    let answer = lambda.invoke(&event("sns-notification.json"));
    assert_error(&answer, "FunctionError", "1 of 1 records failed");
    assert_error(&answer, "FunctionError", "sns topic `alerts`");
    // audit, hooked to the same topic, still ran.
    let audit = delivered(&lambda, "audit", 1);
    assert!(
        audit[0].contains(r#""subject":"Disk full""#),
        "{}",
        audit[0]
    );

    let mut calm = event("sns-notification.json");
    calm["Records"][0]["Sns"]["Message"] = json!("all good");
    assert_eq!(lambda.invoke(&calm), Value::Null);
}

#[test]
fn dynamodb_streams_route_by_table_and_action_and_stop_at_the_first_failure() {
    let store = store();
    let (lambda, aws) = start(&store);

    assert_eq!(lambda.invoke(&event("dynamodb-users.json")), failures(&[]));
    let welcome = delivered(&lambda, "on-user-insert", 1);
    assert!(
        welcome[0].contains(r#""subject":"Welcome to wasm-lambda, Ada!""#),
        "{}",
        welcome[0]
    );
    // The welcome message went to the jobs queue, through its grant.
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk_config());
    let received = common::block_on(async {
        let url = sqs.get_queue_url().queue_name("jobs").send().await.unwrap();
        sqs.receive_message()
            .queue_url(url.queue_url().unwrap())
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap()
    });
    let message: Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(message["to"], "ada@example.com", "{message}");
    delivered(&lambda, "user-sync", 2);

    // The first insert fails (no email): it and the record after it are retried, in order.
    assert_eq!(
        lambda.invoke(&event("dynamodb-insert-fails.json")),
        failures(&["100", "200"])
    );
    delivered(&lambda, "on-user-insert", 1);
    lambda.wait_for_log("has no email", Duration::from_secs(5));
}

#[test]
fn kinesis_records_are_decoded_and_failures_named_by_sequence_number() {
    let store = store();
    let (lambda, _aws) = start(&store);

    // The second record is binary; `clicks` fails on it.
    assert_eq!(
        lambda.invoke(&event("kinesis-clicks.json")),
        failures(&["49568167373333333334444444444444444444444444444444444444"])
    );
    delivered(&lambda, "clicks", 1);
}

#[test]
fn schedules_and_eventbridge_events_reach_their_functions() {
    let store = store();
    let (lambda, _aws) = start(&store);

    assert_eq!(lambda.invoke(&event("schedule-nightly.json")), Value::Null);
    let nightly = delivered(&lambda, "nightly", 1);
    assert!(nightly[0].contains(r#""rule":"nightly""#), "{}", nightly[0]);

    assert_eq!(
        lambda.invoke(&event("eventbridge-order-placed.json")),
        Value::Null
    );
    let orders = delivered(&lambda, "orders", 1);
    assert!(
        orders[0].contains(r#""order_id":"o-1001""#),
        "{}",
        orders[0]
    );

    let mut shipped = event("eventbridge-order-placed.json");
    shipped["detail-type"] = json!("OrderShipped");
    assert_error(
        &lambda.invoke(&shipped),
        "FunctionNotFound",
        "no function is hooked to event `com.example.orders` `OrderShipped`",
    );

    let unknown = lambda.invoke(&json!({"Records": [{"eventSource": "aws:iot", "iot": {}}]}));
    assert_error(&unknown, "UnsupportedEvent", "`aws:iot`");
    let unknown = lambda.invoke(&json!({"hello": "world"}));
    assert_error(&unknown, "UnsupportedEvent", "top-level keys: [hello]");
}

#[test]
fn records_the_deadline_leaves_no_time_for_are_reported_failed() {
    let store = Store::new();
    store.add_wat(
        "worker",
        &reacting_to("slow", Reaction::Spin),
        "hooks:\n  - {type: sqs, queue: jobs}\n",
    );
    let lambda = Lambda::launch_with_timeout(
        &[("FUNCTIONS_DIR", store.path().to_str().unwrap())],
        Duration::from_secs(1),
    );

    let mut batch = event("sqs-batch.json");
    batch["Records"][1]["body"] = json!("slow job");
    let started = Instant::now();
    // msg-2 runs until the deadline and is stopped; msg-3 is never started. Lambda's own
    // timeout never fires: the answer comes first.
    assert_eq!(lambda.invoke(&batch), failures(&["msg-2", "msg-3"]));
    assert!(started.elapsed() < Duration::from_secs(2));
    lambda.wait_for_log("function `worker` timed out", Duration::from_secs(5));
    lambda.wait_for_log(
        "record not run; reported failed record=sqs queue `jobs` record msg-3",
        Duration::from_secs(5),
    );

    // The next invocation is healthy.
    assert_eq!(lambda.invoke(&event("sqs-batch.json")), failures(&[]));
}

#[test]
fn deployed_resources_route_under_the_names_hooks_use() {
    let store = store();
    let names = "jobs=prod-stack-JobsQueue-1A2B3C,uploads=prod-uploads-123456789012";
    let aws = aws(&store, Some(names));
    let lambda = start_on(&store, &aws, &[("SOURCE_NAMES", names)]);

    let mut batch = event("sqs-batch.json");
    for record in batch["Records"].as_array_mut().unwrap() {
        record["eventSourceARN"] =
            json!("arn:aws:sqs:us-east-1:123456789012:prod-stack-JobsQueue-1A2B3C");
    }
    assert_eq!(lambda.invoke(&batch), failures(&[]));
    // The function sees the real queue.
    let jobs = delivered(&lambda, "job-worker", 3);
    assert!(
        jobs[0].contains(r#""queue":"prod-stack-JobsQueue-1A2B3C""#),
        "{}",
        jobs[0]
    );

    let mut upload = event("s3-put-encoded-key.json");
    upload["Records"][0]["s3"]["bucket"]["name"] = json!("prod-uploads-123456789012");
    assert_eq!(lambda.invoke(&upload), Value::Null);
    delivered(&lambda, "on-upload", 1);
}
