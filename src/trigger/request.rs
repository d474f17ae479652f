//! The request family: one event in, one function, one answer in the shape the event's kind
//! expects. A request routes to the most specific hook of its kind that matches it.

use serde_json::{Map, Value};

use super::InvocationContext;
use super::hook::Attributes;
use super::kind::HookKind;
use crate::error::Error;

/// What a function's call ended with, as a kind's answer reads it.
#[derive(Debug, Clone, Copy)]
pub struct Called<'a> {
    pub function: &'a str,
    /// The Lambda request id, which the log's events carry.
    pub request_id: &'a str,
    /// The ARN this invocation was made with (the bootstrap's own function).
    pub invoked_function_arn: &'a str,
    pub output: Result<&'a [u8], &'a Error>,
}

impl Called<'_> {
    /// The output, or the call's error.
    pub fn result(&self) -> Result<&[u8], Error> {
        self.output.map_err(Error::clone)
    }

    /// A `FunctionError` of this function: its output is not what its kind answers with.
    pub fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::FunctionError {
            function: self.function.to_string(),
            reason: reason.into(),
        }
    }

    /// The output as a JSON object, or a `FunctionError` saying what `kind` expects.
    pub fn object(&self, kind: HookKind, expected: &str) -> Result<Map<String, Value>, Error> {
        let output = self.result()?;
        match serde_json::from_slice::<Value>(output) {
            Ok(Value::Object(object)) => Ok(object),
            _ => Err(self.invalid(format!(
                "a {kind} function must return a JSON object {expected}, got {}",
                preview(output)
            ))),
        }
    }
}

/// A request of any kind but HTTP (which has its own router), normalized.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: HookKind,
    /// What hook conditions read: a WebSocket route key, a Cognito trigger source, ...
    pub attributes: Vec<(&'static str, String)>,
    /// What the function receives besides `trigger` and `context`.
    pub fields: Map<String, Value>,
    /// The event as delivered.
    pub raw: Value,
    /// How logs and messages name it: "cognito trigger `PreSignUp_SignUp`".
    pub label: String,
    /// The answer for what the function's call ended with.
    pub answer: fn(&Request, Called<'_>) -> Answer,
    /// The function's input; by default `{"trigger", "context", <fields>, "raw"}`.
    pub input: fn(&Request, &InvocationContext) -> Vec<u8>,
    /// Time kept back from the function's call for what the answer must do after it (a
    /// custom resource's PUT).
    pub reserve: std::time::Duration,
}

/// What Lambda is answered, and what must happen before.
#[derive(Debug)]
pub struct Answer {
    pub value: Result<Value, Error>,
    /// A CloudFormation custom resource's outcome, PUT to its `ResponseURL` before answering.
    pub put: Option<Put>,
}

impl Answer {
    pub fn value(value: Result<Value, Error>) -> Answer {
        Answer { value, put: None }
    }
}

/// An HTTP PUT the answer needs first.
#[derive(Debug, Clone)]
pub struct Put {
    pub url: String,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(kind: HookKind, label: impl Into<String>, fields: Value, raw: &Value) -> Request {
        Request {
            kind,
            attributes: Vec::new(),
            fields: match fields {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            raw: raw.clone(),
            label: label.into(),
            answer: |_, called| Answer::value(called.result().map(output_json)),
            input: envelope,
            reserve: std::time::Duration::ZERO,
        }
    }

    pub fn with(mut self, attribute: &'static str, value: impl Into<String>) -> Request {
        self.attributes.push((attribute, value.into()));
        self
    }

    pub fn answered_by(mut self, answer: fn(&Request, Called<'_>) -> Answer) -> Request {
        self.answer = answer;
        self
    }

    pub fn input(&self, context: &InvocationContext) -> Vec<u8> {
        (self.input)(self, context)
    }

    pub fn answer(&self, called: Called<'_>) -> Answer {
        (self.answer)(self, called)
    }

    /// The error for a request no hook takes.
    pub fn not_hooked(&self) -> Error {
        Error::NotHooked {
            record: self.label.clone(),
        }
    }
}

impl Attributes for Request {
    fn values(&self, attribute: &str) -> Vec<std::borrow::Cow<'_, str>> {
        // A raw hook's conditions are JSON pointers into the event itself.
        if self.kind == HookKind::Raw {
            return pointer_value(&self.raw, attribute)
                .map(std::borrow::Cow::Owned)
                .into_iter()
                .collect();
        }
        self.attributes
            .iter()
            .filter(|(name, _)| *name == attribute)
            .map(|(_, value)| std::borrow::Cow::Borrowed(value.as_str()))
            .collect()
    }
}

/// `{"trigger", "context", <fields>, "raw"}`.
fn envelope(request: &Request, context: &InvocationContext) -> Vec<u8> {
    let mut input = Map::with_capacity(request.fields.len() + 3);
    input.insert("trigger".into(), request.kind.name().into());
    input.insert("context".into(), context.to_json());
    input.extend(request.fields.clone());
    input.insert("raw".into(), request.raw.clone());
    Value::Object(input).to_string().into_bytes()
}

/// A function's output as JSON if it parses as JSON, else as a string.
pub fn output_json(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(output).into_owned()))
}

/// The start of an output, for messages.
pub fn preview(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let mut preview: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        preview.push_str("...");
    }
    format!("`{preview}`")
}

/// The values a raw hook's pointer reads: a string as it is, a number or boolean as its text,
/// an object or array as JSON text (`*` matches it); nothing where the pointer leads nowhere.
fn pointer_value(event: &Value, pointer: &str) -> Option<String> {
    match event.pointer(pointer)? {
        Value::String(text) => Some(text.clone()),
        Value::Null => Some(String::new()),
        other => Some(other.to_string()),
    }
}
