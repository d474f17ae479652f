//! Every request kind and the newer batch kinds through the real bootstrap under the Lambda
//! Runtime API emulator, with real event shapes (`tests/fixtures/events/triggers/`: `sam local
//! generate-event` where it has them, the AWS documentation's examples elsewhere), each answer
//! checked field by field against its contract, failures included.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::{Lambda, Reaction, Store, assert_error, constant_plugin, event, reacting_to};
use serde_json::{Value, json};

fn trigger(name: &str) -> Value {
    event(&format!("triggers/{name}"))
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The functions the request kinds route to.
fn request_store() -> Store {
    let store = Store::new();
    store.add_wat(
        "connect",
        &constant_plugin(r#"{"status": 200, "body": "welcome"}"#),
        "hooks:\n  - {type: websocket, route: $connect}\n",
    );
    store.add_built(
        "chat",
        "echo",
        "hooks:\n  - {type: websocket, route: sendMessage}\n",
    );
    store.add_wat(
        "any-message",
        &constant_plugin("fallback"),
        "hooks:\n  - {type: websocket, route: $default}\n",
    );
    store.add_wat(
        "allow-rest",
        &constant_plugin(
            r#"{"allow": true, "principal": "ada", "context": {"user": "ada", "roles": ["admin"], "level": 3}}"#,
        ),
        "hooks:\n  - {type: authorizer, api: restapi1}\n",
    );
    store.add_wat(
        "deny-http",
        &constant_plugin(r#"{"allow": false, "context": {"why": "expired"}}"#),
        "hooks:\n  - {type: authorizer, api: httpapi1}\n",
    );
    store.add_built("any-authorizer", "echo", "hooks:\n  - {type: authorizer}\n");
    store.add_wat(
        "stringly",
        &constant_plugin(r#"{"allow": "true", "principal": "ada"}"#),
        "hooks:\n  - {type: authorizer, api: strapi}\n",
    );
    store.add_wat(
        "signup",
        &constant_plugin(r#"{"autoConfirmUser": true}"#),
        "hooks:\n  - {type: cognito, trigger: \"PreSignUp_*\"}\n",
    );
    store.add_wat(
        "tokens",
        &constant_plugin("not an object"),
        "hooks:\n  - {type: cognito, trigger: \"TokenGeneration_*\", user_pool: us-east-1_EXAMPLE}\n",
    );
    store.add_built(
        "get-post",
        "echo",
        "hooks:\n  - {type: appsync, field: Query.getPost}\n",
    );
    store.add_wat(
        "post-author",
        &constant_plugin(
            r#"[{"name": "Ada"}, {"errorMessage": "no such author", "errorType": "NotFound"}]"#,
        ),
        "hooks:\n  - {type: appsync, field: Post.author}\n",
    );
    store.add_wat(
        "order-api",
        &constant_plugin(r#"{"body": {"id": "order-42", "status": "shipped"}, "status": 200}"#),
        "hooks:\n  - {type: bedrock_agent, action_group: orders, api_path: \"/orders/{id}\"}\n",
    );
    store.add_wat(
        "order-function",
        &reacting_to("get_order", Reaction::Fail),
        "hooks:\n  - {type: bedrock_agent, action_group: orders, function: get_order}\n",
    );
    store.add_wat(
        "mail",
        &constant_plugin("STOP_RULE"),
        "hooks:\n  - {type: ses, recipient: \"orders@*\"}\n",
    );
    store.add_built(
        "invoices",
        "echo",
        "hooks:\n  - {type: raw, match: {/kind: \"invoice.*\", /id: \"*\"}}\n",
    );
    store.add_built(
        "hello",
        "echo",
        "hooks:\n  - {type: http, method: GET, path: \"/hello/{name}\"}\n",
    );
    store
}

#[test]
fn websocket_routes_answer_status_and_body() {
    let store = request_store();
    let lambda = Lambda::start(store.path(), &[]);

    let connected = lambda.invoke(&trigger("websocket-connect.json"));
    assert_eq!(connected["statusCode"], 200, "{connected}");
    assert_eq!(connected["body"], "welcome");

    let message = lambda.invoke(&trigger("websocket-message.json"));
    assert_eq!(message["statusCode"], 200, "{message}");
    let input: Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
    assert_eq!(input["trigger"], "websocket");
    assert_eq!(input["connection_id"], "conn-1");
    assert_eq!(input["route"], "sendMessage");
    assert_eq!(input["body"], r#"{"action":"sendMessage","text":"hi"}"#);

    let other = lambda.invoke(&trigger("websocket-default.json"));
    assert_eq!(other["statusCode"], 200, "{other}");
    assert_eq!(other["body"], "fallback");

    // No hook takes a disconnect (`$default` never does): a 500 naming why, no internals.
    let mut disconnect = trigger("websocket-connect.json");
    disconnect["requestContext"]["routeKey"] = json!("$disconnect");
    disconnect["requestContext"]["eventType"] = json!("DISCONNECT");
    let answer = lambda.invoke(&disconnect);
    assert_eq!(answer["statusCode"], 500, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["errorType"], "FunctionNotFound");
    assert!(body["requestId"].is_string());
}

#[test]
fn authorizers_answer_an_iam_policy_or_the_simple_form() {
    let store = request_store();
    let lambda = Lambda::start(store.path(), &[]);

    let token = lambda.invoke(&trigger("authorizer-rest-token.json"));
    assert_eq!(token["principalId"], "ada", "{token}");
    let statement = &token["policyDocument"]["Statement"][0];
    assert_eq!(token["policyDocument"]["Version"], "2012-10-17");
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "execute-api:Invoke");
    assert_eq!(
        statement["Resource"],
        "arn:aws:execute-api:us-east-1:123456789012:restapi1/prod/GET/hello"
    );
    // Context values are strings, numbers or booleans: anything else goes as JSON text.
    assert_eq!(
        token["context"],
        json!({"user": "ada", "roles": "[\"admin\"]", "level": 3})
    );
    let request = lambda.invoke(&trigger("authorizer-rest-request.json"));
    assert_eq!(request["policyDocument"]["Statement"][0]["Effect"], "Allow");

    // HTTP API payload 2.0: the simple form. Payload 1.0: an IAM policy, denied.
    let v2 = lambda.invoke(&trigger("authorizer-http-v2.json"));
    assert_eq!(
        v2,
        json!({"isAuthorized": false, "context": {"why": "expired"}})
    );
    let v1 = lambda.invoke(&trigger("authorizer-http-v1.json"));
    assert_eq!(
        v1["policyDocument"]["Statement"][0]["Effect"], "Deny",
        "{v1}"
    );
    assert_eq!(v1["principalId"], "anonymous");

    // The WebSocket API has only the catch-all authorizer, which answers no `allow`: an error,
    // never an allow.
    // Only a boolean allows: "true" as text does not.
    let mut stringly = trigger("authorizer-rest-token.json");
    stringly["methodArn"] = json!("arn:aws:execute-api:us-east-1:123456789012:strapi/prod/GET/x");
    assert_error(
        &lambda.invoke(&stringly),
        "FunctionError",
        "must return `allow`",
    );

    let websocket = lambda.invoke(&trigger("authorizer-websocket.json"));
    assert_error(&websocket, "FunctionError", "must return `allow`");
}

#[test]
fn cognito_triggers_get_their_event_back_with_the_response_set() {
    let store = request_store();
    let lambda = Lambda::start(store.path(), &[]);

    let sent = trigger("cognito-pre-signup.json");
    let answer = lambda.invoke(&sent);
    let mut expected = sent.clone();
    expected["response"]["autoConfirmUser"] = json!(true);
    assert_eq!(answer, expected);

    let tokens = lambda.invoke(&trigger("cognito-pre-token-v2.json"));
    assert_error(&tokens, "FunctionError", "must return a JSON object");
    let message = lambda.invoke(&trigger("cognito-custom-message.json"));
    assert_error(&message, "FunctionNotFound", "CustomMessage_SignUp");
}

#[test]
fn appsync_bedrock_ses_raw_and_lattice_answer_in_their_shapes() {
    let store = request_store();
    let lambda = Lambda::start(store.path(), &[]);

    let post = lambda.invoke(&trigger("appsync-single.json"));
    assert_eq!(post["trigger"], "appsync", "{post}");
    assert_eq!(post["field"], "Query.getPost");
    assert_eq!(post["arguments"], json!({"id": "post-1"}));
    assert_eq!(post["identity"]["username"], "ada");
    let authors = lambda.invoke(&trigger("appsync-batch.json"));
    assert_eq!(
        authors,
        json!([
            {"data": {"name": "Ada"}, "errorMessage": null, "errorType": null},
            {"data": null, "errorMessage": "no such author", "errorType": "NotFound"},
        ])
    );

    let api = lambda.invoke(&trigger("bedrock-agent-api.json"));
    assert_eq!(api["messageVersion"], "1.0", "{api}");
    assert_eq!(api["response"]["actionGroup"], "orders");
    assert_eq!(api["response"]["apiPath"], "/orders/{id}");
    assert_eq!(api["response"]["httpMethod"], "GET");
    assert_eq!(api["response"]["httpStatusCode"], 200);
    let body = api["response"]["responseBody"]["application/json"]["body"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"id": "order-42", "status": "shipped"})
    );
    assert_eq!(api["sessionAttributes"], json!({"customer": "ada"}));
    let function = lambda.invoke(&trigger("bedrock-agent-function.json"));
    let response = &function["response"];
    assert_eq!(response["function"], "get_order", "{function}");
    assert_eq!(response["functionResponse"]["responseState"], "FAILURE");
    let text = response["functionResponse"]["responseBody"]["TEXT"]["body"]
        .as_str()
        .unwrap();
    assert!(text.contains("FunctionError"), "{text}");

    let mail = lambda.invoke(&trigger("ses-receipt.json"));
    assert_eq!(mail, json!({"disposition": "STOP_RULE"}));

    let invoice = json!({"kind": "invoice.paid", "id": 7, "amount": 12.5});
    assert_eq!(lambda.invoke(&invoice), invoice);
    let unknown = lambda.invoke(&json!({"kind": "refund", "id": 7}));
    assert_error(&unknown, "UnsupportedEvent", "top-level keys: [id, kind]");

    for lattice in ["lattice-v1.json", "lattice-v2.json"] {
        let answer = lambda.invoke(&trigger(lattice));
        assert_eq!(answer["statusCode"], 200, "{lattice}: {answer}");
        assert_eq!(answer["statusDescription"], "200 OK");
        assert_eq!(answer["isBase64Encoded"], false);
        let input: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(input["params"]["name"], "ada", "{lattice}");
        assert_eq!(input["query"]["lang"], "en", "{lattice}");
        assert_eq!(input["method"], "GET");
    }
}

/// What a response URL was sent: method, content type, body.
type Received = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

/// A server standing in for CloudFormation's response URL: records every request, answers 200.
fn response_url() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/response", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let method = line.split(' ').next().unwrap_or_default().to_string();
            let (mut length, mut content_type) = (0, None);
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "content-type" => content_type = Some(value.trim().to_string()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            sink.lock().unwrap().push((method, content_type, body));
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (url, received)
}

#[test]
fn custom_resources_always_get_their_put() {
    let store = Store::new();
    store.add_wat(
        "greeting",
        &constant_plugin(r#"{"physical_id": "greeting-ada", "data": {"Greeting": "hello ada"}}"#),
        "hooks:\n  - {type: custom_resource, resource_type: Custom::Greeting}\n",
    );
    store.add_wat(
        "stuck",
        &reacting_to("Custom::Stuck", Reaction::Spin),
        "timeout: 1s\nhooks:\n  - {type: custom_resource, resource_type: Custom::Stuck}\n",
    );
    // The stand-in response URL is on loopback, which only local development may reach.
    let lambda = Lambda::start(store.path(), &[("ALLOW_PRIVATE_EGRESS", "true")]);
    let (url, received) = response_url();
    let sent = |name: &str, resource_type: &str| {
        let mut event = trigger(name);
        event["ResponseURL"] = json!(url);
        event["ResourceType"] = json!(resource_type);
        // CloudFormation invoked this function itself: the bootstrap PUTs.
        event.as_object_mut().unwrap().remove("ServiceToken");
        event
    };
    let last = || received.lock().unwrap().last().cloned().unwrap();

    let answer = lambda.invoke(&sent("custom-resource-create.json", "Custom::Greeting"));
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    let (method, content_type, body) = last();
    assert_eq!(method, "PUT");
    // A presigned URL is signed without a content type.
    assert_eq!(content_type.as_deref(), Some(""));
    let create = trigger("custom-resource-create.json");
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "greeting-ada");
    assert_eq!(body["Data"], json!({"Greeting": "hello ada"}));
    assert_eq!(body["NoEcho"], false);
    for field in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(body[field], create[field], "{field}");
    }

    // A Delete may not change the physical id: FAILED, with the reason, under the old id.
    let mut delete = sent("custom-resource-delete.json", "Custom::Greeting");
    delete["PhysicalResourceId"] = json!("greeting-grace");
    lambda.invoke(&delete);
    let (_, _, body) = last();
    assert_eq!(body["Status"], "FAILED", "{body}");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("may not change the physical id")
    );
    assert_eq!(body["PhysicalResourceId"], "greeting-grace");

    // A function that times out, and a type no function is hooked to: FAILED all the same.
    lambda.invoke(&sent("custom-resource-update.json", "Custom::Stuck"));
    let (_, _, body) = last();
    assert_eq!(body["Status"], "FAILED", "{body}");
    assert!(
        body["Reason"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    lambda.invoke(&sent("custom-resource-create.json", "Custom::Nobody"));
    let (_, _, body) = last();
    assert_eq!(body["Status"], "FAILED", "{body}");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("no function is hooked")
    );
    assert_eq!(received.lock().unwrap().len(), 4);

    // The CDK provider framework's handler: another function PUTs; the outcome is the answer.
    let mut framework = trigger("custom-resource-cdk-provider.json");
    framework["ResponseURL"] = json!(url);
    let answer = lambda.invoke(&framework);
    assert_eq!(
        answer,
        json!({"PhysicalResourceId": "greeting-ada", "Data": {"Greeting": "hello ada"}, "NoEcho": false})
    );
    assert_eq!(
        received.lock().unwrap().len(),
        4,
        "no PUT for the framework"
    );

    // The response URL comes in the event: deployed, only an AWS HTTPS endpoint is reached, never
    // a private or loopback address.
    let deployed = Lambda::start(store.path(), &[]);
    let answer = deployed.invoke(&sent("custom-resource-create.json", "Custom::Greeting"));
    assert_error(&answer, "FunctionError", "is not an https URL");
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    for elsewhere in [
        "https://169.254.169.254/latest/meta-data/".to_string(),
        format!("https://127.0.0.1:{port}/response"),
        format!("https://s3.amazonaws.com@127.0.0.1:{port}/response"),
        format!("https://[::1]:{port}/response"),
        "https://s3.amazonaws.com.example.org/response".to_string(),
        "https://amazonaws.com/response".to_string(),
    ] {
        let mut internal = sent("custom-resource-create.json", "Custom::Greeting");
        internal["ResponseURL"] = json!(elsewhere);
        let answer = deployed.invoke(&internal);
        assert_error(&answer, "FunctionError", "is not an AWS endpoint");
    }
    assert_eq!(received.lock().unwrap().len(), 4, "nothing reached the URL");
}

#[test]
fn a_broken_specific_authorizer_never_falls_to_a_broader_one() {
    let store = Store::new();
    store.add_wat(
        "open",
        &constant_plugin(r#"{"allow": true}"#),
        "hooks:\n  - {type: authorizer}\n",
    );
    // Its manifest does not validate; its hook names the API it guards.
    store.add_wat(
        "strict",
        &constant_plugin(r#"{"allow": false}"#),
        "timeout: soon\nhooks:\n  - {type: authorizer, api: restapi1}\n",
    );
    let lambda = Lambda::start(store.path(), &[]);
    let answer = lambda.invoke(&trigger("authorizer-rest-token.json"));
    assert_error(&answer, "ManifestInvalid", "strict");
    // Another API's requests are the catch-all's.
    let mut other = trigger("authorizer-rest-token.json");
    other["methodArn"] = json!("arn:aws:execute-api:us-east-1:123456789012:other/prod/GET/hello");
    let allowed = lambda.invoke(&other);
    assert_eq!(
        allowed["policyDocument"]["Statement"][0]["Effect"], "Allow",
        "{allowed}"
    );
}

#[test]
fn kafka_mq_firehose_logs_and_documentdb_batches_keep_their_guarantees() {
    let store = Store::new();
    // Fails the records whose key or value holds `order-1`: offset 15 of orders-0.
    store.add_wat(
        "orders-kafka",
        &reacting_to("\"key\":\"order-1\"", Reaction::Fail),
        "hooks:\n  - {type: kafka, topic: orders}\n",
    );
    store.add_built(
        "orders-mq",
        "echo",
        "hooks:\n  - {type: mq, queue: orders}\n",
    );
    store.add_wat(
        "clicks",
        &reacting_to("/pricing", Reaction::Fail),
        "hooks:\n  - {type: firehose, delivery_stream: clicks}\n",
    );
    store.add_built(
        "order-logs",
        "echo",
        "hooks:\n  - {type: logs, log_group: /aws/lambda/orders}\n",
    );
    store.add_built(
        "users-docdb",
        "echo",
        "hooks:\n  - {type: database, source: users, action: insert}\n",
    );
    let lambda = Lambda::start(store.path(), &[("RUST_LOG", "info,wasm_lambda=debug")]);

    // Per partition, nothing after a failure runs; the other partition goes on.
    let kafka = lambda.invoke(&trigger("kafka-msk.json"));
    assert_eq!(
        kafka,
        json!({"batchItemFailures": [
            {"itemIdentifier": {"partition": "orders-0", "offset": 15}},
            {"itemIdentifier": {"partition": "orders-0", "offset": 16}},
        ]}),
        "{}",
        lambda.logs()
    );
    let delivered = |function: &str| {
        lambda
            .logs()
            .lines()
            .filter(|l| {
                l.contains("record delivered") && l.contains(&format!("function={function} "))
            })
            .count()
    };
    common::eventually(Duration::from_secs(5), "the kafka delivery log", || {
        delivered("orders-kafka") == 1
    });
    assert_eq!(
        lambda.invoke(&trigger("kafka-self-managed.json")),
        json!({"batchItemFailures": []})
    );

    assert_eq!(lambda.invoke(&trigger("mq-activemq.json")), Value::Null);
    assert_eq!(lambda.invoke(&trigger("mq-rabbitmq.json")), Value::Null);
    let mut elsewhere = trigger("mq-activemq.json");
    elsewhere["messages"][0]["destination"]["physicalName"] = json!("refunds");
    assert_error(
        &lambda.invoke(&elsewhere),
        "FunctionNotFound",
        "mq queue `refunds`",
    );

    // Every record back: the failed one with its data as it came.
    let sent = trigger("firehose.json");
    let answer = lambda.invoke(&sent);
    let records = answer["records"].as_array().expect("records");
    assert_eq!(records.len(), 3, "{answer}");
    for (record, sent) in records.iter().zip(sent["records"].as_array().unwrap()) {
        assert_eq!(record["recordId"], sent["recordId"]);
    }
    assert_eq!(records[0]["result"], "Ok");
    assert_eq!(records[0]["data"], base64(""));
    assert_eq!(records[1]["result"], "ProcessingFailed");
    assert_eq!(records[1]["data"], sent["records"][1]["data"]);
    assert_eq!(records[2]["result"], "Ok");
    // A stream whose source is MSK carries the payload as `kafkaRecordValue`, both ways.
    let mut from_msk = trigger("firehose.json");
    for record in from_msk["records"].as_array_mut().unwrap() {
        let data = record.as_object_mut().unwrap().remove("data").unwrap();
        record["kafkaRecordValue"] = data;
    }
    let answer = lambda.invoke(&from_msk);
    assert_eq!(
        answer["records"][0]["kafkaRecordValue"],
        base64(""),
        "{answer}"
    );
    assert!(answer["records"][0].get("data").is_none(), "{answer}");
    assert_eq!(
        answer["records"][1]["kafkaRecordValue"],
        from_msk["records"][1]["kafkaRecordValue"]
    );

    assert_eq!(lambda.invoke(&trigger("logs.json")), Value::Null);
    common::eventually(Duration::from_secs(5), "the logs delivery log", || {
        delivered("order-logs") == 2
    });

    assert_eq!(
        lambda.invoke(&trigger("documentdb-insert.json")),
        Value::Null
    );
    common::eventually(
        Duration::from_secs(5),
        "the documentdb delivery log",
        || delivered("users-docdb") == 1,
    );
    // A control event (the collection dropped, the stream invalidated) no hook takes is done,
    // not a failure that would block the stream.
    let mut invalidated = trigger("documentdb-insert.json");
    invalidated["events"][0]["event"] =
        json!({"_id": {"_data": "0166"}, "operationType": "invalidate"});
    assert_eq!(lambda.invoke(&invalidated), Value::Null);
    let mut removed = trigger("documentdb-insert.json");
    removed["events"][0]["event"]["operationType"] = json!("delete");
    assert_error(
        &lambda.invoke(&removed),
        "FunctionNotFound",
        "database `users` delete",
    );
}

/// An example function with its own manifest (`edit` applied to its text), its built module.
fn example(store: &Store, name: &str, edit: impl Fn(String) -> String) {
    let manifest =
        std::fs::read_to_string(format!("{}/functions/{name}/manifest.yaml", common::ROOT))
            .unwrap();
    let module = std::fs::read(common::built_function(name)).unwrap();
    store.add(
        name,
        &format!("{}module: {name}.wasm\n", edit(manifest)),
        Some(&module),
    );
}

#[test]
fn the_chat_and_gatekeeper_examples_answer_their_apis() {
    let store = Store::new();
    example(&store, "chat", |manifest| manifest);
    // The digest of `let-me-in`: the manifest holds digests, never tokens.
    let digest = "a3ee786b5707c27d42570785081ec17f5c7db9262a01366af362a1aa61a420b9";
    example(&store, "gatekeeper", |manifest| {
        manifest.replace("token_sha256: \"\"", &format!("token_sha256: {digest}"))
    });
    let lambda = Lambda::start(store.path(), &[]);

    let connected = lambda.invoke(&trigger("websocket-connect.json"));
    assert_eq!(connected["statusCode"], 200, "{connected}");
    let message = lambda.invoke(&trigger("websocket-message.json"));
    assert_eq!(
        message["body"], r#"conn-1: {"action":"sendMessage","text":"hi"}"#,
        "{message}"
    );

    let mut request = trigger("authorizer-http-v2.json");
    request["identitySource"] = json!(["Bearer let-me-in"]);
    let allowed = lambda.invoke(&request);
    assert_eq!(
        allowed,
        json!({"isAuthorized": true, "context": {"authorized_by": "gatekeeper"}})
    );
    request["identitySource"] = json!(["Bearer guess"]);
    assert_eq!(lambda.invoke(&request)["isAuthorized"], false);
    let mut token = trigger("authorizer-rest-token.json");
    token["authorizationToken"] = json!("let-me-in");
    let policy = lambda.invoke(&token);
    assert_eq!(policy["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(policy["principalId"], "api-client");
    // A REST REQUEST authorizer's event has no identity source: the Authorization header.
    let mut request = trigger("authorizer-rest-request.json");
    request["headers"]["Authorization"] = json!("Bearer let-me-in");
    let policy = lambda.invoke(&request);
    assert_eq!(
        policy["policyDocument"]["Statement"][0]["Effect"], "Allow",
        "{policy}"
    );
}
