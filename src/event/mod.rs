//! Classifies an incoming Lambda event and normalizes it into what a function receives.
//!
//! Detection goes by the event's own shape, most distinctive key first:
//! - `{"function": ..., "input": ...}`: a direct invocation;
//! - `requestContext.elb`: an ALB target-group request;
//! - `version: "2.0"` with `requestContext.http`: HTTP API v2 or a Function URL;
//! - `httpMethod` with `requestContext`: API Gateway REST (v1);
//! - `Records` whose `eventSource` is `aws:s3`, `aws:sqs`, `aws:sns`, `aws:dynamodb` or
//!   `aws:kinesis`: a batch of records;
//! - `source`, `detail-type` and `detail`: an EventBridge event, or a schedule when it is
//!   `aws.events`' `Scheduled Event`.

mod http;
mod records;

pub use self::http::{HttpRequest, HttpShape};
pub use self::records::{Batch, Record, Reply, Source, dynamodb_to_json};

use serde_json::Value;

use crate::error::Error;

/// An invocation's payload as the Runtime API delivered it: JSON, or why it is not. Reading it
/// never fails, so a payload that is not JSON is answered with our own `InvalidRequest` rather
/// than the runtime library's deserialization error.
#[derive(Debug)]
pub struct Payload(pub Result<Value, String>);

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        Ok(Payload(
            Value::deserialize(deserializer).map_err(|error| error.to_string()),
        ))
    }
}

impl Payload {
    /// The event, or `InvalidRequest` naming why it cannot be read.
    pub fn into_event(self) -> Result<Value, Error> {
        self.0.map_err(|reason| {
            Error::InvalidRequest(format!("the event is not JSON: {}", one_line(&reason)))
        })
    }
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
    /// Records for the functions hooked to their sources: S3, SQS, SNS, DynamoDB Streams,
    /// Kinesis, EventBridge, schedules.
    Records(Batch),
}

impl Event {
    /// Classifies `event`. An unknown shape is `UnsupportedEvent` naming the keys seen.
    pub fn classify(event: &Value) -> Result<Event, Error> {
        let Some(object) = event.as_object() else {
            return Err(Error::UnsupportedEvent(format!(
                "expected a JSON object, got {}",
                kind_of(event)
            )));
        };
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
        if let Some(request) = self::http::classify(event) {
            return request.map(|request| Event::Http(Box::new(request)));
        }
        if let Some(batch) = records::classify(event) {
            return batch.map(Event::Records);
        }
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        Err(Error::UnsupportedEvent(format!(
            "no known event has this shape (top-level keys: [{}])",
            keys.join(", ")
        )))
    }
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

    #[test]
    fn unknown_events_name_their_keys() {
        let error = Event::classify(&json!({"Records": [], "foo": 1})).unwrap_err();
        assert_eq!(error.error_type(), "UnsupportedEvent");
        assert!(error.to_string().contains("[Records, foo]"), "{error}");
        let error = Event::classify(&json!([1])).unwrap_err();
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
        assert_eq!(request.shape, HttpShape::HttpV2);
        assert_eq!(request.headers["host"], "x");
        assert_eq!(request.source_ip.as_deref(), Some("1.2.3.4"));
    }
}
