//! Fuzzing with proptest: event classification and normalization, routing, and manifest parsing
//! never panic, whatever the input.
//!
//! The corpus is the project's fixtures: every event in `tests/fixtures/events/`, every manifest
//! in `tests/fixtures/manifests/` and `functions/`. Each case takes a seed from it and mutates it
//! structurally (values replaced by arbitrary JSON or text, keys dropped, types swapped), or
//! starts from arbitrary input. `make test` runs 256 cases per target; for a long run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release --lib fuzz_tests
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use crate::error::Error;
use crate::manifest::Manifest;
use crate::router::RouteTable;
use crate::trigger::deliver::Outcome;
use crate::trigger::http::route_pattern;
use crate::trigger::request::Called;
use crate::trigger::{Event, HttpResponse, InvocationContext, RawEvent, Request};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Keys the classifier and parsers look at, so arbitrary objects often resemble real events.
const KEYS: &[&str] = &[
    // serde_json's raw value token: with its `raw_value` feature (left off) the tree would read
    // an object led by it as JSON text.
    "$serde_json::private::RawValue",
    "function",
    "input",
    "Records",
    "eventSource",
    "EventSource",
    "eventSourceARN",
    "requestContext",
    "elb",
    "http",
    "httpMethod",
    "version",
    "rawPath",
    "path",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "body",
    "isBase64Encoded",
    "detail-type",
    "source",
    "detail",
    "resources",
    "s3",
    "bucket",
    "object",
    "key",
    "name",
    "messageId",
    "Sns",
    "TopicArn",
    "Message",
    "dynamodb",
    "eventName",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "kinesis",
    "data",
    "sequenceNumber",
    "partitionKey",
    "stage",
    "method",
    "S",
    "N",
    "M",
    "L",
    "type",
    "methodArn",
    "routeArn",
    "authorizationToken",
    "connectionId",
    "routeKey",
    "eventType",
    "triggerSource",
    "userPoolId",
    "response",
    "RequestType",
    "ResourceType",
    "StackId",
    "LogicalResourceId",
    "ResponseURL",
    "ServiceToken",
    "info",
    "fieldName",
    "parentTypeName",
    "arguments",
    "messageVersion",
    "agent",
    "actionGroup",
    "apiPath",
    "records",
    "topic",
    "partition",
    "offset",
    "value",
    "messages",
    "rmqMessagesByQueue",
    "events",
    "operationType",
    "ns",
    "coll",
    "invocationId",
    "deliveryStreamArn",
    "recordId",
    "awslogs",
    "ses",
    "mail",
    "receipt",
    "raw_path",
];

fn corpus(dir: &str, pick: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut seeds: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .filter_map(|entry| pick(&entry.unwrap().path()))
        .collect();
    seeds.sort();
    seeds
}

/// The JSON files under `dir` and its subdirectories.
fn json_files(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "json") {
            found.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

fn events() -> &'static [Value] {
    static EVENTS: OnceLock<Vec<Value>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let mut texts = Vec::new();
        json_files(&Path::new(ROOT).join("tests/fixtures/events"), &mut texts);
        texts.sort();
        texts
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect()
    })
}

fn manifests() -> &'static [String] {
    static MANIFESTS: OnceLock<Vec<String>> = OnceLock::new();
    MANIFESTS.get_or_init(|| {
        let manifest = |path: &Path| std::fs::read_to_string(path.join("manifest.yaml")).ok();
        let mut seeds = corpus("tests/fixtures/manifests", manifest);
        seeds.extend(corpus("functions", manifest));
        seeds
    })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
        prop::sample::select(KEYS).prop_map(|k| json!(k)),
        Just(json!("aws:sqs")),
        Just(json!("2.0")),
        Just(json!("/hello/{name}")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        ".{0,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// An edit at a path of an event: each step picks a child by index (modulo its size).
#[derive(Debug, Clone)]
enum Edit {
    Replace(Vec<usize>, Value),
    Remove(Vec<usize>),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let path = prop::collection::vec(0usize..64, 0..6);
    prop::collection::vec(
        prop_oneof![
            (path.clone(), arbitrary_json()).prop_map(|(p, v)| Edit::Replace(p, v)),
            path.prop_map(Edit::Remove),
        ],
        1..5,
    )
}

fn apply(value: &mut Value, edit: &Edit) {
    let steps = match edit {
        Edit::Replace(steps, _) | Edit::Remove(steps) => steps,
    };
    // Walk the steps to a JSON pointer, then edit there.
    let mut tokens: Vec<String> = Vec::new();
    let mut here = &*value;
    for step in steps {
        let (token, next) = match here {
            Value::Object(map) if !map.is_empty() => {
                let (key, next) = map.iter().nth(step % map.len()).unwrap();
                (key.replace('~', "~0").replace('/', "~1"), next)
            }
            Value::Array(items) if !items.is_empty() => {
                let index = step % items.len();
                (index.to_string(), &items[index])
            }
            _ => break,
        };
        tokens.push(token);
        here = next;
    }
    match edit {
        Edit::Replace(_, replacement) => {
            let pointer: String = tokens.iter().map(|t| format!("/{t}")).collect();
            if let Some(target) = value.pointer_mut(&pointer) {
                *target = replacement.clone();
            }
        }
        Edit::Remove(_) => {
            let Some(last) = tokens.pop() else { return };
            let parent: String = tokens.iter().map(|t| format!("/{t}")).collect();
            match value.pointer_mut(&parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(index) = last.parse::<usize>() {
                        items.remove(index);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Classifies `event` and, when it is one, normalizes and answers it as the bootstrap would.
fn exercise(event: &Value) {
    // An event is read from its text: the tree its text reads back as is the one classified (a
    // tree built here may read back otherwise: its floats, for one).
    let text = event.to_string();
    let Ok(read_back) = serde_json::from_str::<Value>(&text) else {
        let _ = Event::classify(event);
        return;
    };
    let event = &read_back;
    let context = InvocationContext {
        request_id: "fuzz".into(),
        function: "f".into(),
        deadline_ms: 0,
        remaining_ms: 0,
        invoked_function_arn: String::new(),
        trace_id: None,
    };
    let classified = Event::classify(event);
    // An event read from its text alone is read as its tree is.
    if let Some(read) = Event::from_text(text.as_bytes()) {
        assert_eq!(
            format!("{read:?}"),
            format!("{:?}", classified.as_ref().unwrap()),
            "{text}"
        );
    }
    match classified {
        Ok(Event::Direct { .. }) | Err(_) => {}
        Ok(Event::Http(request)) => {
            let _ = routes().match_http(&request.method, &request.path);
            let params = BTreeMap::from([("name".to_string(), "%E0%A4%A".to_string())]);
            let envelope =
                request.envelope(&context, "/hello/{name}", &params, RawEvent::Tree(event));
            let event_text = event.to_string();
            let spliced = request.envelope(
                &context,
                "/hello/{name}",
                &params,
                RawEvent::Text(event_text.as_bytes()),
            );
            assert_eq!(
                serde_json::from_slice::<Value>(&envelope).unwrap(),
                serde_json::from_slice::<Value>(&spliced).unwrap()
            );
            let _ = HttpResponse::from_output("f", &envelope)
                .map(|response| response.shape(request.shape));
        }
        Ok(Event::Batch(batch)) => {
            let mut outcomes = Vec::new();
            for (index, record) in batch.records.iter().enumerate() {
                let _ = record.input(&context);
                let _ = routes().match_record(&record.source);
                outcomes.push(match index % 3 {
                    0 => Outcome::Delivered(br#"{"result": "Dropped", "data": {"a": 1}}"#.to_vec()),
                    1 => Outcome::Delivered(b"plain".to_vec()),
                    _ => Outcome::Failed(Error::InvalidRequest("fuzz".into())),
                });
            }
            let _ = batch.answer(&outcomes);
        }
        Ok(Event::Request(request)) | Ok(Event::Unrecognized { request, .. }) => {
            answer_every_way(&request, &context)
        }
    }
}

/// Routes `request` and answers it for outputs of every kind, and for a failure.
fn answer_every_way(request: &Request, context: &InvocationContext) {
    let _ = request.input(context);
    let _ = routes().match_request(request);
    let failure = Error::InvalidRequest("fuzz".into());
    let outputs: [&[u8]; 6] = [
        b"",
        b"null",
        b"plain",
        br#"{"allow": true, "context": {"a": [1]}, "physical_id": "p", "data": {"x": 1}}"#,
        br#"[1, {"errorMessage": "no"}]"#,
        br#"{"body": 7, "status": 404, "disposition": "STOP_RULE"}"#,
    ];
    for output in outputs {
        let _ = request.answer(Called {
            function: "f",
            request_id: "fuzz",
            invoked_function_arn: "",
            output: Ok(output),
        });
    }
    let _ = request.answer(Called {
        function: "f",
        request_id: "fuzz",
        invoked_function_arn: "",
        output: Err(&failure),
    });
}

/// A routing table with a hook of every kind.
fn routes() -> &'static RouteTable {
    static ROUTES: OnceLock<RouteTable> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let manifest = Manifest::parse(
            r#"
name: all
runtime: wasm
hooks:
  - {type: http, method: GET, path: "/hello/{name}"}
  - {type: http, path: "/files/{rest+}"}
  - {type: s3, bucket: uploads, prefix: in/, suffix: .png, events: ["ObjectCreated:*"]}
  - {type: sqs, queue: jobs}
  - {type: sns, topic: alerts}
  - {type: database, source: users, action: [insert, update]}
  - {type: stream, stream: clicks}
  - {type: schedule, rule: nightly}
  - {type: event, source: com.example.orders, detail_type: OrderPlaced}
  - {type: websocket, route: $connect}
  - {type: websocket, route: $default}
  - {type: authorizer}
  - {type: cognito, trigger: "PreSignUp_*"}
  - {type: appsync, field: Query.getPost}
  - {type: bedrock_agent, action_group: orders}
  - {type: custom_resource, resource_type: Custom::Greeting}
  - {type: ses, recipient: "*@example.com"}
  - {type: kafka, topic: orders}
  - {type: mq, queue: orders}
  - {type: firehose, delivery_stream: clicks}
  - {type: logs, log_group: /aws/lambda/orders}
  - {type: raw, match: {/kind: "a*", /id: "*"}}
"#,
            "fuzz",
            None,
        )
        .unwrap();
        RouteTable::build([&manifest]).0
    })
}

proptest! {
    // The default reads PROPTEST_CASES (256 cases without it).
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_events_never_panic(seed in any::<prop::sample::Index>(), edits in edits()) {
        let mut event = seed.get(events()).clone();
        for edit in &edits {
            apply(&mut event, edit);
        }
        exercise(&event);
    }

    #[test]
    fn arbitrary_events_never_panic(event in arbitrary_json()) {
        exercise(&event);
    }

    #[test]
    fn routing_arbitrary_paths_never_panics(method in "[A-Za-z]{0,8}", path in ".{0,64}") {
        let _ = routes().match_http(&method, &path);
        let _ = route_pattern(&path);
    }

    #[test]
    fn mutated_manifests_never_panic(
        seed in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        insert in ".{0,32}",
    ) {
        let text = seed.get(manifests());
        let boundaries: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
        let at = *cut.get(&boundaries);
        let mutated = format!("{}{insert}{}", &text[..at], &text[at..]);
        let _ = Manifest::parse(&mutated, "fuzz/manifest.yaml", Some("fuzz"));
    }

    #[test]
    fn arbitrary_manifests_never_panic(text in ".{0,200}") {
        let _ = Manifest::parse(&text, "fuzz/manifest.yaml", None);
    }

    #[test]
    fn manifests_with_arbitrary_values_never_panic(
        field in prop::sample::select(&[
            "name", "runtime", "module", "sha256", "entrypoint", "timeout", "memory_limit",
            "instance", "wasi", "allowed_paths", "fuel", "allowed_hosts", "config", "build",
            "hooks", "max_http_response_bytes",
        ][..]),
        value in arbitrary_json(),
    ) {
        let mut document = json!({"name": "fuzz", "runtime": "wasm"});
        document[field] = value;
        let text = serde_yaml::to_string(&document).unwrap();
        let _ = Manifest::parse(&text, "fuzz/manifest.yaml", Some("fuzz"));
    }
}
