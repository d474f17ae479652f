//! HTTP and direct invocations through the real bootstrap under the Lambda Runtime API emulator.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Lambda, ROOT, Store, assert_error, constant_plugin, event};
use serde_json::{Value, json};

#[test]
fn example_functions_answer_as_make_run_serves_them() {
    let lambda = Lambda::start(&Path::new(ROOT).join("functions"), &[]);

    let (status, content_type, body) = lambda.url("GET", "/hello/world", None);
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello, world!\n"),
        "{}",
        lambda.logs()
    );
    assert!(content_type.starts_with("text/plain"), "{content_type}");

    assert_eq!(
        lambda.invoke(&event("direct-echo-object.json")),
        json!({"hello": "world", "n": [1, 2, 3]})
    );
    assert_eq!(
        lambda.invoke(&event("direct-echo-string.json")),
        json!("plain text in, plain text out")
    );
}

/// hello on GET /hello/{name}; `inspect` (the echo module: answers with the request it got) on
/// /echo/{rest+} and /hello/{rest+}; `exact` on GET /hello/world; `logo` answering base64.
fn http_store() -> Store {
    let store = Store::new();
    store.add_built(
        "hello",
        "hello",
        "config: {greeting: Hello}\nhooks:\n  - {type: http, method: GET, path: \"/hello/{name}\"}\n",
    );
    store.add_built(
        "inspect",
        "echo",
        "hooks:\n  - {type: http, path: \"/echo/{rest+}\"}\n  - {type: http, method: ANY, path: \"/hello/{rest+}\"}\n",
    );
    store.add_wat(
        "exact",
        &constant_plugin("exactly /hello/world"),
        "hooks:\n  - {type: http, method: GET, path: /hello/world}\n",
    );
    store.add_wat(
        "logo",
        &constant_plugin(
            r#"{"status": 200, "headers": {"content-type": "image/png"}, "body": "iVBORw0KGgo=", "is_base64_encoded": true}"#,
        ),
        "hooks:\n  - {type: http, method: GET, path: /logo.png}\n",
    );
    store
}

fn v2_get(path: &str) -> Value {
    let mut event = event("apigw-v2-get-hello.json");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event
}

#[test]
fn each_http_event_gets_an_answer_in_its_own_shape() {
    let store = http_store();
    let lambda = Lambda::start(store.path(), &[]);

    let v1 = lambda.invoke(&event("apigw-v1-get-hello.json"));
    assert_eq!(v1["statusCode"], 200, "{v1}");
    assert_eq!(v1["body"], "Hello, ada!\n");
    assert_eq!(
        v1["multiValueHeaders"]["content-type"],
        json!(["text/plain; charset=utf-8"])
    );
    assert_eq!(v1["isBase64Encoded"], false);

    let v2 = lambda.invoke(&event("apigw-v2-get-hello.json"));
    assert_eq!(v2["statusCode"], 200, "{v2}");
    assert_eq!(v2["body"], "Hello, ada!\n");
    assert_eq!(v2["headers"]["content-type"], "text/plain; charset=utf-8");

    let staged = lambda.invoke(&event("apigw-v2-named-stage-hello.json"));
    assert_eq!(
        staged["body"], "Hello, ada!\n",
        "stage prefix is not part of the route"
    );

    let url = lambda.invoke(&event("function-url-get-hello.json"));
    assert_eq!(url["statusCode"], 200, "{url}");
    assert_eq!(
        url["body"], "Hello, Jürgen!\n",
        "route parameters are percent-decoded"
    );

    let alb = lambda.invoke(&event("alb-get-hello.json"));
    assert_eq!(alb["statusCode"], 200, "{alb}");
    assert_eq!(alb["statusDescription"], "200 OK");
    assert_eq!(alb["headers"]["content-type"], "text/plain; charset=utf-8");
    assert_eq!(alb["body"], "Hello, ada!\n");

    let multi = lambda.invoke(&event("alb-multivalue-get-hello.json"));
    assert_eq!(multi["statusDescription"], "200 OK", "{multi}");
    assert_eq!(
        multi["multiValueHeaders"]["content-type"],
        json!(["text/plain; charset=utf-8"])
    );

    // The same route through the emulator's own Function URL endpoint.
    let (status, _, body) = lambda.url("GET", "/hello/ada", None);
    assert_eq!((status, body.as_str()), (200, "Hello, ada!\n"));
}

#[test]
fn functions_receive_the_normalized_request_and_base64_bodies_pass_both_ways() {
    let store = http_store();
    let lambda = Lambda::start(store.path(), &[]);

    let answer = lambda.invoke(&event("apigw-v1-post-base64.json"));
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let request: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(request["trigger"], "http");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/echo/upload");
    assert_eq!(request["route"], "/echo/{rest+}");
    assert_eq!(request["params"], json!({"rest": "upload"}));
    assert_eq!(request["body"], "aGVsbG8sIHdvcmxk");
    assert_eq!(request["is_base64_encoded"], true);
    assert_eq!(
        request["headers"]["content-type"],
        "application/octet-stream"
    );
    assert_eq!(request["context"]["function"], "inspect");
    assert!(
        !request["context"]["request_id"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        request["raw"]["resource"], "/{proxy+}",
        "raw carries the original event"
    );

    let v2 = lambda.invoke(&v2_get("/echo/q"));
    let request: Value = serde_json::from_str(v2["body"].as_str().unwrap()).unwrap();
    assert_eq!(request["query"], json!({"lang": "en", "tag": "a,b"}));
    assert_eq!(request["source_ip"], "1.2.3.4");

    // v2 is read from the event's JSON: header names lower-cased (of two spellings of one name
    // the later wins), arrays of values joined, a value that is not visible ASCII left empty.
    let mut spelled = v2_get("/echo/h");
    spelled["headers"] =
        json!({"X-Tag": "a", "x-tag": "b", "x-many": ["1", "2"], "x-utf8": "café"});
    spelled["queryStringParameters"] = json!({"ids": ["3", "4"]});
    let answer = lambda.invoke(&spelled);
    let request: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        request["headers"],
        json!({"x-tag": "b", "x-many": "1, 2", "x-utf8": ""})
    );
    assert_eq!(request["query"], json!({"ids": "3,4"}));
    // A field the envelope carries of the wrong type is named; the next request is served.
    for (field, value, named) in [
        ("headers", json!({"x-bad": "a\r\nb"}), "header `x-bad`"),
        ("headers", json!({"bad name": "x"}), "`bad name`"),
        ("rawPath", json!(7), "`rawPath` must be a string"),
        ("cookies", json!("a=1"), "`cookies` must be an array"),
        (
            "body",
            json!({"not": "a string"}),
            "`body` must be a string",
        ),
    ] {
        let mut broken = v2_get("/echo/broken");
        broken[field] = value;
        let answer = lambda.invoke(&broken);
        assert_error(&answer, "InvalidRequest", named);
        assert!(
            answer["errorMessage"]
                .as_str()
                .unwrap()
                .contains("malformed HTTP API v2 request"),
            "{answer}"
        );
    }
    assert_eq!(lambda.invoke(&v2_get("/echo/after"))["statusCode"], 200);

    let logo = lambda.invoke(&v2_get("/logo.png"));
    assert_eq!(logo["isBase64Encoded"], true, "{logo}\n{}", lambda.logs());
    assert_eq!(logo["body"], "iVBORw0KGgo=");
    assert_eq!(logo["headers"]["content-type"], "image/png");
}

#[test]
fn the_most_specific_route_wins_and_unrouted_paths_get_404() {
    let store = http_store();
    let lambda = Lambda::start(store.path(), &[]);

    let exact = lambda.invoke(&v2_get("/hello/world"));
    assert_eq!(
        exact["body"], "exactly /hello/world",
        "static beats {{name}}: {exact}"
    );
    let param = lambda.invoke(&v2_get("/hello/grace"));
    assert_eq!(param["body"], "Hello, grace!\n", "{{name}} beats {{rest+}}");
    let greedy = lambda.invoke(&v2_get("/hello/a/b/c"));
    let request: Value = serde_json::from_str(greedy["body"].as_str().unwrap()).unwrap();
    assert_eq!(request["context"]["function"], "inspect");
    assert_eq!(request["params"]["rest"], "a/b/c");

    // POST is not taken by GET /hello/{name}, so the greedy ANY route gets it.
    let (status, _, body) = lambda.url("POST", "/hello/grace", Some("{}"));
    assert_eq!(status, 200);
    assert!(body.contains(r#""function":"inspect""#), "{body}");

    let missing = lambda.invoke(&v2_get("/nothing/here"));
    assert_eq!(
        missing["statusCode"], 404,
        "an unrouted path is a 404, not a Lambda error"
    );
    assert!(
        missing["body"]
            .as_str()
            .unwrap()
            .contains("GET /nothing/here")
    );
    let (status, _, _) = lambda.url("GET", "/nothing/here", None);
    assert_eq!(status, 404);
}

#[test]
fn direct_invocations_run_any_extism_plugin_unchanged() {
    let store = Store::new();
    store.add_built("echo", "echo", "");
    let count_vowels = std::fs::read(common::count_vowels_wasm()).unwrap();
    store.add(
        "count-vowels",
        "name: count-vowels\nruntime: wasm\nentrypoint: count_vowels\n",
        Some(&count_vowels),
    );
    let lambda = Lambda::start(store.path(), &[]);

    let answer = lambda.invoke(&event("direct-count-vowels.json"));
    assert_eq!(answer["count"], 8, "{answer}");
    assert_eq!(
        lambda.invoke(&event("direct-echo-object.json")),
        json!({"hello": "world", "n": [1, 2, 3]})
    );
    assert_eq!(lambda.call("echo", json!(42)), json!(42));

    let missing = lambda.call("nope", Value::Null);
    assert_error(&missing, "FunctionNotFound", "`nope`");

    let unknown = lambda.invoke(&json!({"detail": 1, "weird": true}));
    assert_error(&unknown, "UnsupportedEvent", "detail, weird");

    let invalid = lambda.invoke(&json!({"function": ["echo"]}));
    assert_eq!(invalid["errorType"], "InvalidRequest", "{invalid}");

    // Errors never wedge the runtime.
    assert_eq!(
        lambda.call("echo", json!("still here")),
        json!("still here")
    );
}

#[test]
fn a_function_whose_manifest_is_broken_answers_its_routes_with_its_error() {
    let store = http_store();
    // Two bad fields, a bad hook, and good hooks: one nobody else has, and others that would
    // beat a serving function's route if they were in its table (a static segment beats
    // `{name}`, a `{param}` beats `{rest+}`), or share a serving function's queue.
    store.add_built("worker", "echo", "hooks:\n  - {type: sqs, queue: shared}\n");
    store.add_wat(
        "broken",
        &constant_plugin("never served"),
        "timeout: 0s\nfuel: lots\nhooks:\n  - {type: http, method: GET, path: /broken}\n  - {type: http, path: /hello/world}\n  - {type: http, method: GET, path: /hello/me}\n  - {type: http, path: \"/echo/{name}\"}\n  - {type: sqs, queue: SQSQueue}\n  - {type: sqs, queue: shared}\n  - {type: http, path: /a//b}\n",
    );
    let lambda = Lambda::start(store.path(), &[]);

    let answer = lambda.invoke(&v2_get("/broken"));
    assert_eq!(answer["statusCode"], 500, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["errorType"], "ManifestInvalid", "{body}");
    assert_eq!(body["errorMessage"], "the function is unavailable");
    let request_id = body["requestId"].as_str().unwrap().to_string();
    assert!(
        !answer["body"].as_str().unwrap().contains("manifest.yaml"),
        "a public caller learns no file: {answer}"
    );
    // The log has every problem, under the request id.
    common::eventually(Duration::from_secs(5), "the error in the log", || {
        lambda.logs().lines().any(|line| {
            line.contains(&request_id)
                && line.contains("timeout: `0s`")
                && line.contains("fuel: invalid type")
        })
    });

    // Serving functions keep every request they would take; a path nothing claims is a 404.
    assert_eq!(
        lambda.invoke(&v2_get("/hello/world"))["body"],
        "exactly /hello/world"
    );
    assert_eq!(lambda.invoke(&v2_get("/hello/me"))["body"], "Hello, me!\n");
    let greedy = lambda.invoke(&v2_get("/echo/x"));
    assert_eq!(greedy["statusCode"], 200, "{greedy}");
    let mut shared = event("sqs-unhooked-queue.json");
    shared["Records"][0]["eventSourceARN"] = json!("arn:aws:sqs:us-west-2:123456789012:shared");
    assert_eq!(
        lambda.invoke(&shared),
        json!({"batchItemFailures": []}),
        "a queue a serving function shares is delivered to it alone"
    );
    assert_eq!(lambda.invoke(&v2_get("/nothing"))["statusCode"], 404);

    // A record for it is failed with the manifest's error (the source keeps it), not unrouted.
    assert_eq!(
        lambda.invoke(&event("sqs-unhooked-queue.json")),
        json!({"batchItemFailures": [{"itemIdentifier": "MessageID_1"}]})
    );
    common::eventually(
        Duration::from_secs(5),
        "the record's error in the log",
        || {
            let logs = lambda.logs();
            logs.contains("ManifestInvalid") && logs.contains("MessageID_1")
        },
    );
}
