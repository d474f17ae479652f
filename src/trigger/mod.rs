//! The trigger house: every kind of event Lambda delivers, each kind in its own module, which
//! owns the kind's manifest hook schema, how its events are recognized, what its functions
//! receive and how it is answered.
//!
//! Two families: request kinds (one input, one function, one answer: HTTP, WebSocket,
//! authorizers, Cognito, AppSync, Bedrock agents, custom resources, SES, raw) and batch kinds
//! (records, each run on every function hooked to it, with per-record outcomes: S3, SQS, SNS,
//! database streams, Kinesis, EventBridge, schedules, Kafka, Amazon MQ, Firehose, logs).
//!
//! Recognition goes by the event's own shape, most distinctive first (see [`Event::classify`]);
//! an event no kind recognizes is a `raw` request, routed by JSON pointers into it, and
//! `UnsupportedEvent` if no raw hook takes it.

pub mod batch;
pub mod deliver;
pub mod hook;
pub mod http;
pub mod kind;
pub mod request;

pub mod appsync;
pub mod authorizer;
pub mod bedrock_agent;
pub mod cognito;
pub mod custom_resource;
pub mod database;
pub mod eventbridge;
pub mod firehose;
pub mod kafka;
pub mod logs;
pub mod mq;
pub mod raw;
pub mod s3;
pub mod ses;
pub mod sns;
pub mod sqs;
pub mod stream;
pub mod websocket;

pub use self::batch::{Batch, Record, Source};
pub use self::http::{HttpRequest, HttpResponse, RawEvent};
pub use self::kind::{Family, HookKind};
pub use self::request::Request;

use serde_json::Value;

use crate::error::Error;

/// An invocation's event as the Runtime API delivered it, or `InvalidRequest` naming why it is
/// not JSON.
pub fn parse_event(event: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(event).map_err(|error| {
        Error::InvalidRequest(format!(
            "the event is not JSON: {}",
            one_line(&error.to_string())
        ))
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What an event asks for.
#[derive(Debug)]
pub enum Event {
    /// `{"function": "<name>", "input": <any JSON>}`
    Direct {
        function: String,
        input: Value,
    },
    Http(Box<HttpRequest>),
    /// A request of another kind, `raw` included.
    Request(Box<Request>),
    Batch(Batch),
    /// No kind recognizes the event: a `raw` request, and the error to answer if no raw hook
    /// takes it.
    Unrecognized {
        request: Box<Request>,
        error: Error,
    },
}

impl Event {
    /// The event in `text` when it is recognized from its text alone, with no tree built: an
    /// HTTP API v2 request as HTTP APIs send it, read as [`Event::classify`] would read it.
    /// `None` for any other event, which is parsed ([`parse_event`]) and classified.
    pub fn from_text(text: &[u8]) -> Option<Event> {
        self::http::from_v2_text(text).map(|request| Event::Http(Box::new(request)))
    }

    /// Classifies `event`. A malformed event of a known kind is `InvalidRequest`; an event of no
    /// known kind is [`Event::Unrecognized`], its error `UnsupportedEvent` naming the keys seen.
    pub fn classify(event: &Value) -> Result<Event, Error> {
        let request = |request: Request| Ok(Event::Request(Box::new(request)));
        let unrecognized = |reason: String| {
            Ok(Event::Unrecognized {
                request: Box::new(raw::request(event)),
                error: Error::UnsupportedEvent(reason),
            })
        };
        let object = match event {
            Value::Object(object) => object,
            Value::Array(_) => {
                if let Some(resolver) = appsync::recognize(event) {
                    return request(resolver);
                }
                return unrecognized(format!("expected a JSON object, got {}", kind_of(event)));
            }
            other => {
                return unrecognized(format!("expected a JSON object, got {}", kind_of(other)));
            }
        };
        // Before direct invocations: a Bedrock function-details event has a `function` too.
        if let Some(agent) = bedrock_agent::recognize(event) {
            return request(agent);
        }
        if let Some(function) = object.get("function") {
            let Some(function) = function.as_str() else {
                return Err(Error::InvalidRequest(format!(
                    "direct invocation: `function` must be a string naming the function, got {}",
                    kind_of(function)
                )));
            };
            return Ok(Event::Direct {
                function: function.to_string(),
                input: object.get("input").cloned().unwrap_or(Value::Null),
            });
        }
        // Before HTTP: an HTTP API authorizer's event also has `rawPath` and `requestContext`.
        let requests: [fn(&Value) -> Option<Request>; 5] = [
            authorizer::recognize,
            websocket::recognize,
            cognito::recognize,
            custom_resource::recognize,
            appsync::recognize,
        ];
        for recognize in requests {
            if let Some(found) = recognize(event) {
                return request(found);
            }
        }
        if let Some(http) = self::http::recognize(event) {
            return http.map(|request| Event::Http(Box::new(request)));
        }
        if let Some(records) = object.get("Records") {
            return records_event(event, records);
        }
        let batches: [Recognizer<Batch>; 6] = [
            kafka::recognize,
            mq::recognize,
            database::recognize_documentdb,
            firehose::recognize,
            logs::recognize,
            eventbridge::recognize,
        ];
        for recognize in batches {
            if let Some(batch) = recognize(event) {
                return batch.map(Event::Batch);
            }
        }
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        unrecognized(format!(
            "no known event has this shape (top-level keys: [{}])",
            keys.join(", ")
        ))
    }
}

/// A batch kind's recognizer: `None` when the event is not of its kind.
type Recognizer<T> = fn(&Value) -> Option<Result<T, Error>>;

/// The record's `eventSource` (`EventSource` for SNS).
fn event_source(record: &Value) -> &str {
    record
        .get("eventSource")
        .or_else(|| record.get("EventSource"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A `Records` event: S3, SQS, SNS, DynamoDB Streams, Kinesis, or an SES receipt.
fn records_event(event: &Value, records: &Value) -> Result<Event, Error> {
    let Some(raws) = records.as_array() else {
        return Err(Error::InvalidRequest(
            "`Records` must be an array of records".to_string(),
        ));
    };
    let keys = |value: &Value| -> String {
        value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let Some(first) = raws.first() else {
        return Ok(Event::Unrecognized {
            request: Box::new(raw::request(event)),
            error: Error::UnsupportedEvent(format!(
                "`Records` is empty, so its source is unknown (top-level keys: [{}])",
                keys(event)
            )),
        });
    };
    let source = event_source(first);
    if let Some(other) = raws.iter().map(event_source).find(|s| *s != source) {
        return Err(Error::InvalidRequest(format!(
            "`Records` mixes event sources `{source}` and `{other}`"
        )));
    }
    let batch = match source {
        "aws:s3" => s3::recognize(event, raws),
        "aws:sqs" => sqs::recognize(event, raws),
        "aws:sns" => sns::recognize(event, raws),
        "aws:dynamodb" => database::recognize_dynamodb(event, raws),
        "aws:kinesis" => stream::recognize(event, raws),
        "aws:ses" => return Ok(Event::Request(Box::new(ses::recognize(event, first)))),
        other => {
            return Ok(Event::Unrecognized {
                request: Box::new(raw::request(event)),
                error: Error::UnsupportedEvent(format!(
                    "records from event source `{other}` (keys of the first record: [{}]); \
                     supported: aws:s3, aws:sqs, aws:sns, aws:dynamodb, aws:kinesis, aws:ses",
                    keys(first)
                )),
            });
        }
    };
    batch.map(Event::Batch)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse<T: serde::de::DeserializeOwned>(event: &Value, what: &str) -> Result<T, Error> {
    T::deserialize(event)
        .map_err(|error| Error::InvalidRequest(format!("malformed {what}: {error}")))
}

/// Invocation facts every function receives as `context`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvocationContext {
    pub request_id: String,
    pub function: String,
    pub deadline_ms: u64,
    pub remaining_ms: u64,
    pub invoked_function_arn: String,
    pub trace_id: Option<String>,
}

impl InvocationContext {
    /// The `context` object of a function's input (the fields above, by name).
    pub fn to_json(&self) -> Value {
        // Strings and integers always serialize.
        serde_json::to_value(self).expect("an invocation context serializes")
    }
}

/// What a direct invocation's plugin receives: a JSON string as its UTF-8 bytes, anything
/// else as JSON text, nothing for `null`.
pub fn direct_input(input: &Value) -> Vec<u8> {
    match input {
        Value::Null => Vec::new(),
        Value::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// A direct invocation's answer: the output as JSON if it parses as JSON, else as a string.
pub fn direct_output(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(output).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn direct_input_and_output_are_raw() {
        assert_eq!(direct_input(&json!("a e i")), b"a e i");
        assert_eq!(direct_input(&json!({"a": 1})), br#"{"a":1}"#);
        assert_eq!(direct_input(&Value::Null), b"");
        assert_eq!(direct_output(br#"{"count": 3}"#), json!({"count": 3}));
        assert_eq!(direct_output(b"plain text"), json!("plain text"));
    }

    fn unsupported(event: Value) -> Error {
        match Event::classify(&event) {
            Ok(Event::Unrecognized { error, .. }) => error,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_events_name_their_keys() {
        let error = unsupported(json!({"Records": [], "foo": 1}));
        assert_eq!(error.error_type(), "UnsupportedEvent");
        assert!(error.to_string().contains("[Records, foo]"), "{error}");
        let error = unsupported(json!([1]));
        assert!(error.to_string().contains("an array"));
        let error = Event::classify(&json!({"function": 7})).unwrap_err();
        assert_eq!(error.error_type(), "InvalidRequest");
    }

    #[test]
    fn a_query_parameter_without_values_is_empty_not_a_panic() {
        let path = format!(
            "{}/tests/fixtures/events/apigw-v1-get-hello.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut event: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        event["multiValueQueryStringParameters"] = json!({"tag": [], "n": ["1", "2"]});
        let Event::Http(request) = Event::classify(&event).unwrap() else {
            panic!("not http")
        };
        assert_eq!(request.query["tag"], "");
        assert_eq!(request.query["n"], "1,2");
    }

    #[test]
    fn v2_strips_a_named_stage() {
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/prod/hello/ada",
            "rawQueryString": "", "headers": {"Host": "x"},
            "requestContext": {"stage": "prod", "http": {"method": "GET", "path": "/prod/hello/ada",
                "sourceIp": "1.2.3.4"}},
            "isBase64Encoded": false
        });
        let Event::Http(request) = Event::classify(&event).unwrap() else {
            panic!("not http")
        };
        assert_eq!(request.path, "/hello/ada");
        assert_eq!(request.shape, http::HttpShape::HttpV2);
        assert_eq!(request.headers["host"], "x");
        assert_eq!(request.source_ip.as_deref(), Some("1.2.3.4"));
    }

    /// A key a writer of data chose (a DynamoDB attribute, a query parameter, an event's
    /// detail) is read as any other, whatever it spells: a batch no parse can read would be
    /// retried until its records expire, holding up its stream.
    #[test]
    fn keys_that_spell_serde_json_tokens_are_read_as_keys() {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/events/dynamodb-users.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        for key in [
            "$serde_json::private::RawValue",
            "\\u0024serde_json::private::RawValue",
        ] {
            let first = format!("\"NewImage\": {{\"{key}\": {{\"S\": \"x\"}},");
            let text = text.replacen("\"NewImage\": {", &first, 1);
            let event = parse_event(text.as_bytes()).unwrap();
            let image = &event["Records"][0]["dynamodb"]["NewImage"];
            assert_eq!(image["$serde_json::private::RawValue"]["S"], "x");
            assert_eq!(image["email"]["S"], "ada@example.com");
            assert!(matches!(Event::classify(&event), Ok(Event::Batch(_))));
        }
        let detail = r#"{"version": "0", "id": "1", "detail-type": "t", "source": "s",
            "account": "1", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"$serde_json::private::RawValue": 7}}"#;
        assert_eq!(
            parse_event(detail.as_bytes()).unwrap()["detail"],
            json!({"$serde_json::private::RawValue": 7})
        );
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn batch_of(name: &str) -> Batch {
        match Event::classify(&fixture(name)) {
            Ok(Event::Batch(batch)) => batch,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// A source's kind, resource and attributes, to compare.
    fn routed(source: &Source) -> (HookKind, &str, Vec<(&str, &str)>) {
        let attributes = source
            .attributes
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        (source.kind, source.resource.as_str(), attributes)
    }

    #[test]
    fn s3_notifications_carry_the_decoded_key() {
        let batch = batch_of("s3-put-encoded-key.json");
        let record = &batch.records[0];
        assert_eq!(
            routed(&record.source),
            (
                HookKind::S3,
                "uploads",
                vec![
                    ("key", "incoming/a b/c.png"),
                    ("event", "ObjectCreated:Put")
                ]
            )
        );
        assert_eq!(record.fields["key"], "incoming/a b/c.png");
        assert_eq!(record.fields["size"], 1024);
        assert_eq!(record.raw["s3"]["object"]["key"], "incoming/a+b%2Fc.png");
        let events: Vec<String> = batch_of("s3-batch.json")
            .records
            .iter()
            .map(|r| r.fields["event"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            events,
            [
                "ObjectCreated:Put",
                "ObjectRemoved:Delete",
                "ObjectCreated:Put"
            ]
        );
    }

    #[test]
    fn sqs_messages_are_named_by_message_id_and_fifo_queues_run_in_order() {
        let batch = batch_of("sqs-poison.json");
        assert!(!batch.ordered);
        let ids: Vec<&str> = batch
            .records
            .iter()
            .filter_map(|r| r.id.as_deref())
            .collect();
        assert_eq!(ids, ["msg-1", "msg-2", "msg-3", "msg-4", "msg-5"]);
        let record = &batch.records[1];
        assert_eq!(routed(&record.source), (HookKind::Sqs, "jobs", vec![]));
        assert_eq!(record.fields["body"], "poison: not a photo");
        assert_eq!(record.fields["attributes"]["ApproximateReceiveCount"], "1");
        assert!(batch_of("sqs-fifo-poison.json").ordered);
    }

    #[test]
    fn sns_notifications_give_subject_and_message() {
        let batch = batch_of("sns-notification.json");
        let record = &batch.records[0];
        assert_eq!(routed(&record.source), (HookKind::Sns, "alerts", vec![]));
        assert_eq!(record.fields["subject"], "Disk full");
        assert_eq!(record.fields["message"], "disk /dev/xvda1 is 95% full");
        assert_eq!(record.fields["attributes"]["Test"], "TestString");
    }

    #[test]
    fn dynamodb_records_give_action_keys_and_plain_images() {
        let batch = batch_of("dynamodb-users.json");
        assert!(batch.ordered);
        let actions: Vec<&str> = batch
            .records
            .iter()
            .map(|r| {
                let (kind, table, attributes) = routed(&r.source);
                assert_eq!((kind, table), (HookKind::Database, "users"));
                attributes[0].1
            })
            .collect();
        assert_eq!(actions, ["insert", "update", "delete"]);
        let insert = &batch.records[0];
        assert_eq!(insert.fields["keys"], json!({"id": "u-101"}));
        assert_eq!(
            insert.fields["new"],
            json!({"id": "u-101", "email": "ada@example.com", "name": "Ada", "age": 36,
                   "tags": ["admin", "beta"]})
        );
        assert_eq!(insert.fields["old"], Value::Null);
        assert_eq!(insert.id.as_deref(), Some("4421584500000000017450439091"));
        let update = &batch.records[1];
        assert!(update.fields["new"].is_object() && update.fields["old"].is_object());
        assert_eq!(batch.records[2].fields["new"], Value::Null);
    }

    #[test]
    fn kinesis_data_is_decoded_and_binary_stays_base64() {
        let batch = batch_of("kinesis-clicks.json");
        assert!(batch.ordered);
        let text = &batch.records[0];
        assert_eq!(routed(&text.source), (HookKind::Stream, "clicks", vec![]));
        assert_eq!(text.fields["data"], r#"{"page": "/home", "user": "u-101"}"#);
        assert_eq!(text.fields["is_base64_encoded"], false);
        assert_eq!(
            text.id.as_deref(),
            Some("49568167373333333333333333333333333333333333333333333333")
        );
        let binary = &batch.records[1];
        assert_eq!(binary.fields["data"], "AJ+Slg==");
        assert_eq!(binary.fields["is_base64_encoded"], true);
    }

    #[test]
    fn schedules_and_eventbridge_events_are_one_record() {
        let schedule = batch_of("schedule-nightly.json");
        assert_eq!(
            routed(&schedule.records[0].source),
            (HookKind::Schedule, "nightly", vec![])
        );
        let order = batch_of("eventbridge-order-placed.json");
        let record = &order.records[0];
        assert_eq!(
            routed(&record.source),
            (
                HookKind::Event,
                "com.example.orders",
                vec![("detail_type", "OrderPlaced")]
            )
        );
        assert_eq!(record.fields["detail"]["order_id"], "o-1001");
    }

    #[test]
    fn a_function_gets_trigger_context_fields_and_the_raw_record() {
        let batch = batch_of("sqs-batch.json");
        let context = InvocationContext {
            request_id: "r-1".into(),
            function: "job-worker".into(),
            deadline_ms: 1_700_000_000_000,
            remaining_ms: 900,
            invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:x".into(),
            trace_id: None,
        };
        let input = batch.records[0].input(&context);
        assert_eq!(input["trigger"], "sqs");
        assert_eq!(input["context"]["request_id"], "r-1");
        assert_eq!(input["context"]["remaining_ms"], 900);
        assert_eq!(input["queue"], "jobs");
        assert_eq!(input["raw"]["messageId"], "msg-1");
    }

    #[test]
    fn unknown_and_malformed_record_events_say_what_they_saw() {
        let error = unsupported(json!({"Records": [{"eventSource": "aws:iot", "iot": {}}]}));
        assert_eq!(error.error_type(), "UnsupportedEvent");
        assert!(error.to_string().contains("`aws:iot`"), "{error}");
        assert!(error.to_string().contains("[eventSource, iot]"), "{error}");
        let error = unsupported(json!({"Records": []}));
        assert_eq!(error.error_type(), "UnsupportedEvent");
        let error = Event::classify(&json!({"Records": [{"eventSource": "aws:sqs", "body": 7}]}))
            .unwrap_err();
        assert!(error.to_string().contains("malformed SQS event"), "{error}");
    }
}
