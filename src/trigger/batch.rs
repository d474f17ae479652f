//! The batch family: records, each run on every function hooked to it, answered with
//! per-record outcomes in the shape its source expects (its kind's `reply`).

use serde_json::{Map, Value, json};

use super::InvocationContext;
use super::deliver::Outcome;
use super::hook::Attributes;
use super::kind::HookKind;
use crate::error::Error;

/// What a record is routed on: its kind, the resource it came from and the attributes hook
/// conditions read (an S3 key and event name, a database action, an event's detail type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub kind: HookKind,
    pub resource: String,
    pub attributes: Vec<(&'static str, String)>,
    /// How logs and messages name it: "sqs queue `jobs`".
    label: String,
}

impl Source {
    pub fn new(kind: HookKind, resource: impl Into<String>, label: impl Into<String>) -> Source {
        Source {
            kind,
            resource: resource.into(),
            attributes: Vec::new(),
            label: label.into(),
        }
    }

    pub fn with(mut self, attribute: &'static str, value: impl Into<String>) -> Source {
        self.attributes.push((attribute, value.into()));
        self
    }

    /// The same source under another resource name (`SOURCE_NAMES`).
    pub fn renamed(&self, name: &str) -> Source {
        Source {
            resource: name.to_string(),
            ..self.clone()
        }
    }
}

impl Attributes for Source {
    fn values(&self, attribute: &str) -> Vec<std::borrow::Cow<'_, str>> {
        self.attributes
            .iter()
            .filter(|(name, _)| *name == attribute)
            .map(|(_, value)| std::borrow::Cow::Borrowed(value.as_str()))
            .collect()
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// One record of a batch, normalized.
#[derive(Debug, Clone)]
pub struct Record {
    pub source: Source,
    /// What the source's failure report names this record by (an SQS message id, a stream
    /// sequence number, a Firehose record id). `None` for sources that report failure by
    /// failing the invocation.
    pub id: Option<String>,
    /// Records of one partition (a Kafka partition) run in order in an ordered batch; `None`
    /// puts the record in the batch's one sequence.
    pub partition: Option<String>,
    /// A record no hook needs to take (a change stream's control event, such as a collection's
    /// `drop` or `invalidate`): with none hooked it is done, not failed, so it never blocks its
    /// stream.
    pub optional: bool,
    /// The kind's own fields, as the function receives them.
    pub fields: Map<String, Value>,
    /// The original record.
    pub raw: Value,
}

impl Record {
    pub fn new(source: Source, id: Option<String>, fields: Value, raw: &Value) -> Record {
        Record {
            source,
            id,
            partition: None,
            optional: false,
            fields: match fields {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            raw: raw.clone(),
        }
    }

    /// What the function receives for this record.
    pub fn input(&self, context: &InvocationContext) -> Value {
        let mut input = Map::with_capacity(self.fields.len() + 3);
        input.insert("trigger".into(), self.source.kind.name().into());
        input.insert("context".into(), context.to_json());
        input.extend(self.fields.clone());
        input.insert("raw".into(), self.raw.clone());
        Value::Object(input)
    }

    /// The record for logs and error messages: its source and id.
    pub fn describe(&self) -> String {
        match &self.id {
            Some(id) => format!("{} record {id}", self.source),
            None => self.source.to_string(),
        }
    }
}

/// How a batch is answered from its records' outcomes.
pub type Reply = fn(&Batch, &[Outcome]) -> Result<Value, Error>;

/// The records of one invocation.
#[derive(Debug, Clone)]
pub struct Batch {
    pub records: Vec<Record>,
    pub reply: Reply,
    /// Records must run in order (a FIFO queue, a stream shard, a Kafka partition): after a
    /// record fails, the later ones of its partition do not run and are reported failed.
    pub ordered: bool,
}

impl Batch {
    pub fn new(records: Vec<Record>, reply: Reply, ordered: bool) -> Batch {
        Batch {
            records,
            reply,
            ordered,
        }
    }

    pub fn answer(&self, outcomes: &[Outcome]) -> Result<Value, Error> {
        (self.reply)(self, outcomes)
    }
}

/// The records that were not delivered, with their outcomes.
pub fn failed<'a>(batch: &'a Batch, outcomes: &'a [Outcome]) -> Vec<(&'a Record, &'a Outcome)> {
    batch
        .records
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| !outcome.delivered())
        .collect()
}

/// The answer of an asynchronous source (S3, SNS, EventBridge, Amazon MQ, logs): `null` when
/// every record was delivered, else an error, so Lambda retries the event.
pub fn fail_invocation(batch: &Batch, outcomes: &[Outcome]) -> Result<Value, Error> {
    let failed = failed(batch, outcomes);
    let Some((record, outcome)) = failed.first() else {
        return Ok(Value::Null);
    };
    let (error_type, cause) = match outcome {
        Outcome::Failed(error) => (error.error_type(), error.to_string()),
        Outcome::NotRun(reason) => ("FunctionTimeout", format!("not run: {reason}")),
        Outcome::Delivered(_) => unreachable!("delivered records are filtered out"),
    };
    Err(Error::RecordsFailed {
        failed: failed.len(),
        total: batch.records.len(),
        first: format!("{}: {cause}", record.describe()),
        error_type,
    })
}

/// `{"batchItemFailures": [{"itemIdentifier": <id>}]}` naming every record not delivered
/// (SQS, Kinesis, DynamoDB Streams). A failed record without an id fails the invocation, so it
/// is retried rather than lost.
pub fn item_failures(batch: &Batch, outcomes: &[Outcome]) -> Result<Value, Error> {
    let failed = failed(batch, outcomes);
    if failed.iter().any(|(record, _)| record.id.is_none()) {
        return fail_invocation(batch, outcomes);
    }
    let failures: Vec<Value> = failed
        .iter()
        .filter_map(|(record, _)| record.id.as_ref())
        .map(|id| json!({"itemIdentifier": id}))
        .collect();
    Ok(json!({"batchItemFailures": failures}))
}

/// An ARN's resource: everything after `arn:partition:service:region:account:`
/// (`arn:aws:sqs:us-east-1:123:jobs` -> `jobs`). Resources may hold colons themselves.
pub fn arn_name(arn: &str) -> &str {
    arn.splitn(6, ':').nth(5).unwrap_or(arn)
}

/// The part of an ARN's resource after `kind/` (`...:table/users/stream/...`, `table` ->
/// `users`); for rules on a custom bus (`rule/bus/name`) the last part.
pub fn arn_resource<'a>(arn: &'a str, kind: &str) -> Option<&'a str> {
    let resource = arn_name(arn).strip_prefix(kind)?.strip_prefix('/')?;
    if kind == "rule" {
        return resource.rsplit('/').next();
    }
    resource.split('/').next()
}

/// Bytes a function reads as text: UTF-8 text stays text; anything else is base64, flagged.
pub fn text_or_base64(bytes: Vec<u8>) -> (Value, bool) {
    use base64::Engine as _;
    match String::from_utf8(bytes) {
        Ok(text) => (Value::String(text), false),
        Err(bytes) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes.as_bytes())),
            true,
        ),
    }
}

/// Base64 text decoded as [`text_or_base64`] gives it; `None` if it is not base64.
pub fn decode_base64(text: &str) -> Option<(Value, bool)> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .map(text_or_base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_from_arns() {
        assert_eq!(arn_name("arn:aws:sqs:us-east-1:123456789012:jobs"), "jobs");
        let table =
            "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2015-06-27T00:48:05.899";
        assert_eq!(arn_resource(table, "table"), Some("users"));
        let stream = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks";
        assert_eq!(arn_resource(stream, "stream"), Some("clicks"));
        let rule = "arn:aws:events:us-east-1:123456789012:rule/nightly";
        assert_eq!(arn_resource(rule, "rule"), Some("nightly"));
        let on_bus = "arn:aws:events:us-east-1:123456789012:rule/orders-bus/nightly";
        assert_eq!(arn_resource(on_bus, "rule"), Some("nightly"));
        assert_eq!(arn_resource("arn:aws:kinesis:EXAMPLE", "stream"), None);
    }
}
