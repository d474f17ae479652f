//! Record events: S3 notifications, SQS, SNS, DynamoDB Streams, Kinesis, EventBridge and
//! schedules, each parsed with its `aws_lambda_events` type and normalized into what a function
//! receives: `{"trigger", "context", <the trigger's fields>, "raw": <the original record>}`.

use aws_lambda_events::dynamodb;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sns::SnsEvent;
use aws_lambda_events::sqs::SqsEvent;
use base64::Engine as _;
use serde_dynamo::AttributeValue;
use serde_json::{Map, Value, json};

use super::{InvocationContext, parse};
use crate::error::Error;

/// The `source` and `detail-type` EventBridge gives a rule's scheduled event.
const SCHEDULE_SOURCE: &str = "aws.events";
const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";

/// What a record is routed on: the hook type it triggers and the resource it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An S3 notification; `key` URL-decoded, `event` such as `ObjectCreated:Put`.
    S3 {
        bucket: String,
        key: String,
        event: String,
    },
    Sqs {
        queue: String,
    },
    Sns {
        topic: String,
    },
    /// A DynamoDB stream record; `action` is `insert`, `update` or `delete`.
    Database {
        table: String,
        action: &'static str,
    },
    /// A Kinesis data stream record.
    Stream {
        stream: String,
    },
    /// An EventBridge rule's scheduled event.
    Schedule {
        rule: String,
    },
    Event {
        source: String,
        detail_type: String,
    },
}

impl Source {
    /// The hook type, which is also the `trigger` a function receives.
    pub fn trigger(&self) -> &'static str {
        match self {
            Source::S3 { .. } => "s3",
            Source::Sqs { .. } => "sqs",
            Source::Sns { .. } => "sns",
            Source::Database { .. } => "database",
            Source::Stream { .. } => "stream",
            Source::Schedule { .. } => "schedule",
            Source::Event { .. } => "event",
        }
    }

    /// The same source under another resource name (`SOURCE_NAMES`).
    pub fn renamed(&self, name: &str) -> Source {
        let mut renamed = self.clone();
        let resource = match &mut renamed {
            Source::S3 { bucket, .. } => bucket,
            Source::Sqs { queue } => queue,
            Source::Sns { topic } => topic,
            Source::Database { table, .. } => table,
            Source::Stream { stream } => stream,
            Source::Schedule { rule } => rule,
            Source::Event { source, .. } => source,
        };
        *resource = name.to_string();
        renamed
    }

    /// The resource hooks name: bucket, queue, topic, table, stream, rule or event source.
    pub fn resource(&self) -> &str {
        match self {
            Source::S3 { bucket, .. } => bucket,
            Source::Sqs { queue } => queue,
            Source::Sns { topic } => topic,
            Source::Database { table, .. } => table,
            Source::Stream { stream } => stream,
            Source::Schedule { rule } => rule,
            Source::Event { source, .. } => source,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::S3 { bucket, key, event } => write!(f, "s3 {event} s3://{bucket}/{key}"),
            Source::Sqs { queue } => write!(f, "sqs queue `{queue}`"),
            Source::Sns { topic } => write!(f, "sns topic `{topic}`"),
            Source::Database { table, action } => write!(f, "database `{table}` {action}"),
            Source::Stream { stream } => write!(f, "stream `{stream}`"),
            Source::Schedule { rule } => write!(f, "schedule rule `{rule}`"),
            Source::Event {
                source,
                detail_type,
            } => write!(f, "event `{source}` `{detail_type}`"),
        }
    }
}

/// One record of a batch, normalized.
#[derive(Debug, Clone)]
pub struct Record {
    pub source: Source,
    /// What `batchItemFailures` names this record by: the SQS message id or the stream sequence
    /// number. `None` for sources that report failure by failing the invocation.
    pub id: Option<String>,
    /// The trigger's own fields, as the function receives them.
    pub fields: Map<String, Value>,
    /// The original record.
    pub raw: Value,
}

impl Record {
    /// What the function receives for this record.
    pub fn input(&self, context: &InvocationContext) -> Value {
        let mut input = Map::with_capacity(self.fields.len() + 3);
        input.insert("trigger".into(), self.source.trigger().into());
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

/// How a batch reports failed records back to Lambda.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `{"batchItemFailures": [{"itemIdentifier": ...}]}`: SQS (message ids).
    SqsItemFailures,
    /// `{"batchItemFailures": [...]}`: Kinesis (sequence numbers).
    KinesisItemFailures,
    /// `{"batchItemFailures": [...]}`: DynamoDB Streams (sequence numbers).
    DynamoDbItemFailures,
    /// Asynchronous sources (S3, SNS, EventBridge, schedules): any failed record fails the
    /// invocation, so Lambda retries the event.
    FailInvocation,
}

/// The records of one invocation.
#[derive(Debug, Clone)]
pub struct Batch {
    pub records: Vec<Record>,
    pub reply: Reply,
    /// Records must run in order: a FIFO queue or a stream shard. After the first failure the
    /// rest do not run (they would be applied out of order) and are reported failed.
    pub ordered: bool,
}

/// Classifies a record event (`Records`) or an EventBridge event, or returns `None` if `event`
/// is neither.
pub(super) fn classify(event: &Value) -> Option<Result<Batch, Error>> {
    let object = event.as_object()?;
    if let Some(records) = object.get("Records") {
        let Some(records) = records.as_array() else {
            return Some(Err(Error::InvalidRequest(
                "`Records` must be an array of records".to_string(),
            )));
        };
        return Some(classify_records(event, records));
    }
    if object.contains_key("detail-type") && object.contains_key("source") {
        return Some(eventbridge(event));
    }
    None
}

fn event_source(record: &Value) -> &str {
    record
        .get("eventSource")
        .or_else(|| record.get("EventSource"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn classify_records(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let Some(first) = raws.first() else {
        let keys: Vec<&str> = event
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        return Err(Error::UnsupportedEvent(format!(
            "`Records` is empty, so its source is unknown (top-level keys: [{}])",
            keys.join(", ")
        )));
    };
    let source = event_source(first);
    if let Some(other) = raws.iter().map(event_source).find(|s| *s != source) {
        return Err(Error::InvalidRequest(format!(
            "`Records` mixes event sources `{source}` and `{other}`"
        )));
    }
    match source {
        "aws:s3" => s3(event, raws),
        "aws:sqs" => sqs(event, raws),
        "aws:sns" => sns(event, raws),
        "aws:dynamodb" => database(event, raws),
        "aws:kinesis" => stream(event, raws),
        other => Err(Error::UnsupportedEvent(format!(
            "records from event source `{other}` (keys of the first record: [{}]); supported: \
             aws:s3, aws:sqs, aws:sns, aws:dynamodb, aws:kinesis",
            first
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ))),
    }
}

/// `fields` as a JSON object (every caller passes an object literal).
fn object(fields: Value) -> Map<String, Value> {
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A batch of `parsed` records (source, batch item id, fields), each with its original record.
fn batch(
    raws: &[Value],
    reply: Reply,
    ordered: bool,
    parsed: impl IntoIterator<Item = (Source, Option<String>, Value)>,
) -> Batch {
    let records = parsed
        .into_iter()
        .zip(raws)
        .map(|((source, id, fields), raw)| Record {
            source,
            id,
            fields: object(fields),
            raw: raw.clone(),
        })
        .collect();
    Batch {
        records,
        reply,
        ordered,
    }
}

/// An ARN's resource: everything after `arn:partition:service:region:account:`
/// (`arn:aws:sqs:us-east-1:123:jobs` -> `jobs`). Resources may hold colons themselves.
fn arn_name(arn: &str) -> &str {
    arn.splitn(6, ':').nth(5).unwrap_or(arn)
}

/// The part of an ARN's resource after `kind/` (`...:table/users/stream/...`, `table` ->
/// `users`); for rules on a custom bus (`rule/bus/name`) the last part.
fn arn_resource<'a>(arn: &'a str, kind: &str) -> Option<&'a str> {
    let resource = arn_name(arn).strip_prefix(kind)?.strip_prefix('/')?;
    if kind == "rule" {
        return resource.rsplit('/').next();
    }
    resource.split('/').next()
}

/// An S3 notification key: form-encoded (`+` is a space) and percent-encoded.
fn decode_s3_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn s3(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: S3Event = parse(event, "S3 notification")?;
    let records = parsed.records.into_iter().map(|record| {
        let object_ = record.s3.object;
        let bucket = record.s3.bucket.name.unwrap_or_default();
        let key = decode_s3_key(object_.key.as_deref().unwrap_or_default());
        let event = record.event_name.unwrap_or_default();
        let fields = json!({
            "bucket": bucket,
            "key": key,
            "size": object_.size,
            "etag": object_.e_tag,
            "version_id": object_.version_id,
            "event": event,
            "time": record.event_time,
            "region": record.aws_region,
        });
        (Source::S3 { bucket, key, event }, None, fields)
    });
    Ok(batch(raws, Reply::FailInvocation, false, records))
}

fn sqs(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: SqsEvent = parse(event, "SQS event")?;
    let mut fifo = false;
    let records: Vec<_> = parsed
        .records
        .into_iter()
        .zip(raws)
        .map(|(message, raw)| {
            let queue = arn_name(message.event_source_arn.as_deref().unwrap_or_default());
            fifo |= queue.ends_with(".fifo");
            let fields = json!({
                "queue": queue,
                "message_id": message.message_id,
                "body": message.body,
                "attributes": message.attributes,
                "message_attributes": raw.get("messageAttributes").cloned().unwrap_or(json!({})),
            });
            let source = Source::Sqs {
                queue: queue.to_string(),
            };
            (source, message.message_id, fields)
        })
        .collect();
    Ok(batch(raws, Reply::SqsItemFailures, fifo, records))
}

fn sns(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: SnsEvent = parse(event, "SNS notification")?;
    let records = parsed.records.into_iter().map(|record| {
        let message = record.sns;
        let topic = arn_name(&message.topic_arn).to_string();
        let attributes: Map<String, Value> = message
            .message_attributes
            .iter()
            .map(|(name, attribute)| (name.clone(), Value::from(attribute.value.clone())))
            .collect();
        let fields = json!({
            "topic": topic,
            "message_id": message.message_id,
            "subject": message.subject,
            "message": message.message,
            "timestamp": message.timestamp,
            "attributes": attributes,
        });
        (Source::Sns { topic }, None, fields)
    });
    Ok(batch(raws, Reply::FailInvocation, false, records))
}

fn database(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: dynamodb::Event = parse(event, "DynamoDB stream event")?;
    let mut records = Vec::with_capacity(raws.len());
    for (record, raw) in parsed.records.into_iter().zip(raws) {
        let action = match record.event_name.as_str() {
            "INSERT" => "insert",
            "MODIFY" => "update",
            "REMOVE" => "delete",
            other => {
                return Err(Error::InvalidRequest(format!(
                    "DynamoDB stream record {}: eventName `{other}` is not INSERT, MODIFY or REMOVE",
                    record.event_id
                )));
            }
        };
        let table = record
            .event_source_arn
            .as_deref()
            .and_then(|arn| arn_resource(arn, "table"))
            .map(str::to_string)
            .or(record.table_name)
            .unwrap_or_default();
        let change = record.change;
        // An image the record does not carry (old on insert, new on delete) is null, not {}.
        let image = |field: &str, item: serde_dynamo::Item| match raw["dynamodb"].get(field) {
            Some(_) => dynamodb_to_json(item),
            None => Value::Null,
        };
        let fields = json!({
            "source": table,
            "action": action,
            "keys": dynamodb_to_json(change.keys),
            "new": image("NewImage", change.new_image),
            "old": image("OldImage", change.old_image),
            "event_id": record.event_id,
            "sequence_number": change.sequence_number,
        });
        let source = Source::Database { table, action };
        records.push((source, change.sequence_number, fields));
    }
    Ok(batch(raws, Reply::DynamoDbItemFailures, true, records))
}

/// DynamoDB attribute values as plain JSON: `{"id": {"S": "1"}, "n": {"N": "2"}}` becomes
/// `{"id": "1", "n": 2}`. Sets become arrays, binary becomes base64 text.
pub fn dynamodb_to_json(item: serde_dynamo::Item) -> Value {
    Value::Object(
        item.into_inner()
            .into_iter()
            .map(|(name, value)| (name, attribute_to_json(value)))
            .collect(),
    )
}

fn attribute_to_json(value: AttributeValue) -> Value {
    let base64 =
        |bytes: Vec<u8>| Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
    // DynamoDB numbers are decimal text; keep them numbers where JSON can hold them.
    let number = |text: String| {
        serde_json::from_str::<serde_json::Number>(&text)
            .map(Value::Number)
            .unwrap_or(Value::String(text))
    };
    match value {
        AttributeValue::S(text) => Value::String(text),
        AttributeValue::N(text) => number(text),
        AttributeValue::Bool(flag) => Value::Bool(flag),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(bytes) => base64(bytes),
        AttributeValue::M(map) => Value::Object(
            map.into_iter()
                .map(|(name, value)| (name, attribute_to_json(value)))
                .collect(),
        ),
        AttributeValue::L(list) => Value::Array(list.into_iter().map(attribute_to_json).collect()),
        AttributeValue::Ss(set) => Value::Array(set.into_iter().map(Value::String).collect()),
        AttributeValue::Ns(set) => Value::Array(set.into_iter().map(number).collect()),
        AttributeValue::Bs(set) => Value::Array(set.into_iter().map(base64).collect()),
    }
}

fn stream(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: KinesisEvent = parse(event, "Kinesis event")?;
    let records = parsed
        .records
        .into_iter()
        .zip(raws)
        .map(|(record, raw)| {
            let stream = record
                .event_source_arn
                .as_deref()
                .and_then(|arn| arn_resource(arn, "stream"))
                .unwrap_or_default()
                .to_string();
            let kinesis = record.kinesis;
            // Text stays text; anything else stays base64, flagged as such.
            let (data, is_base64_encoded) = match String::from_utf8(kinesis.data.0) {
                Ok(text) => (Value::String(text), false),
                Err(bytes) => (
                    Value::String(
                        base64::engine::general_purpose::STANDARD.encode(bytes.as_bytes()),
                    ),
                    true,
                ),
            };
            let fields = json!({
                "stream": stream,
                "partition_key": kinesis.partition_key,
                "sequence_number": kinesis.sequence_number,
                "data": data,
                "is_base64_encoded": is_base64_encoded,
                "arrival_time": raw["kinesis"]["approximateArrivalTimestamp"],
            });
            let source = Source::Stream { stream };
            (source, Some(kinesis.sequence_number), fields)
        })
        .collect::<Vec<_>>();
    Ok(batch(raws, Reply::KinesisItemFailures, true, records))
}

fn eventbridge(event: &Value) -> Result<Batch, Error> {
    let parsed: EventBridgeEvent<Value> = parse(event, "EventBridge event")?;
    let resources = parsed.resources.unwrap_or_default();
    let (source, fields) =
        if parsed.source == SCHEDULE_SOURCE && parsed.detail_type == SCHEDULE_DETAIL_TYPE {
            let rule = resources
                .iter()
                .find_map(|arn| arn_resource(arn, "rule"))
                .unwrap_or_default()
                .to_string();
            let fields = json!({
                "rule": rule,
                "time": parsed.time,
                "id": parsed.id,
                "resources": resources,
            });
            (Source::Schedule { rule }, fields)
        } else {
            let fields = json!({
                "source": parsed.source,
                "detail_type": parsed.detail_type,
                "detail": parsed.detail,
                "time": parsed.time,
                "id": parsed.id,
                "account": parsed.account,
                "region": parsed.region,
                "resources": resources,
            });
            let source = Source::Event {
                source: parsed.source,
                detail_type: parsed.detail_type,
            };
            (source, fields)
        };
    let raws = std::slice::from_ref(event);
    Ok(batch(
        raws,
        Reply::FailInvocation,
        false,
        [(source, None, fields)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn batch_of(name: &str) -> Batch {
        match Event::classify(&fixture(name)) {
            Ok(Event::Records(batch)) => batch,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn s3_notifications_carry_the_decoded_key() {
        let batch = batch_of("s3-put-encoded-key.json");
        assert_eq!(batch.reply, Reply::FailInvocation);
        let record = &batch.records[0];
        assert_eq!(
            record.source,
            Source::S3 {
                bucket: "uploads".into(),
                key: "incoming/a b/c.png".into(),
                event: "ObjectCreated:Put".into()
            }
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
        assert_eq!(batch.reply, Reply::SqsItemFailures);
        assert!(!batch.ordered);
        let ids: Vec<&str> = batch
            .records
            .iter()
            .filter_map(|r| r.id.as_deref())
            .collect();
        assert_eq!(ids, ["msg-1", "msg-2", "msg-3", "msg-4", "msg-5"]);
        let record = &batch.records[1];
        assert_eq!(
            record.source,
            Source::Sqs {
                queue: "jobs".into()
            }
        );
        assert_eq!(record.fields["body"], "poison: not a photo");
        assert_eq!(record.fields["attributes"]["ApproximateReceiveCount"], "1");
        assert!(batch_of("sqs-fifo-poison.json").ordered);
    }

    #[test]
    fn sns_notifications_give_subject_and_message() {
        let batch = batch_of("sns-notification.json");
        assert_eq!(batch.reply, Reply::FailInvocation);
        let record = &batch.records[0];
        assert_eq!(
            record.source,
            Source::Sns {
                topic: "alerts".into()
            }
        );
        assert_eq!(record.fields["subject"], "Disk full");
        assert_eq!(record.fields["message"], "disk /dev/xvda1 is 95% full");
        assert_eq!(record.fields["attributes"]["Test"], "TestString");
    }

    #[test]
    fn dynamodb_records_give_action_keys_and_plain_images() {
        let batch = batch_of("dynamodb-users.json");
        assert_eq!(batch.reply, Reply::DynamoDbItemFailures);
        assert!(batch.ordered);
        let actions: Vec<&str> = batch
            .records
            .iter()
            .map(|r| match &r.source {
                Source::Database { table, action } => {
                    assert_eq!(table, "users");
                    *action
                }
                other => panic!("{other:?}"),
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
        assert_eq!(batch.reply, Reply::KinesisItemFailures);
        assert!(batch.ordered);
        let text = &batch.records[0];
        assert_eq!(
            text.source,
            Source::Stream {
                stream: "clicks".into()
            }
        );
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
            schedule.records[0].source,
            Source::Schedule {
                rule: "nightly".into()
            }
        );
        assert_eq!(schedule.reply, Reply::FailInvocation);
        let order = batch_of("eventbridge-order-placed.json");
        let record = &order.records[0];
        assert_eq!(
            record.source,
            Source::Event {
                source: "com.example.orders".into(),
                detail_type: "OrderPlaced".into()
            }
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
        let error = Event::classify(&json!({"Records": [{"eventSource": "aws:ses", "ses": {}}]}))
            .unwrap_err();
        assert_eq!(error.error_type(), "UnsupportedEvent");
        assert!(error.to_string().contains("`aws:ses`"), "{error}");
        assert!(error.to_string().contains("[eventSource, ses]"), "{error}");
        let error = Event::classify(&json!({"Records": []})).unwrap_err();
        assert_eq!(error.error_type(), "UnsupportedEvent");
        let error = Event::classify(&json!({"Records": [{"eventSource": "aws:sqs", "body": 7}]}))
            .unwrap_err();
        assert!(error.to_string().contains("malformed SQS event"), "{error}");
    }

    #[test]
    fn s3_keys_are_url_decoded() {
        assert_eq!(decode_s3_key("a+b%2Fc.png"), "a b/c.png");
        assert_eq!(decode_s3_key("plain/key.txt"), "plain/key.txt");
        assert_eq!(decode_s3_key("caf%C3%A9+%2B1"), "café +1");
    }

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

    #[test]
    fn dynamodb_attribute_values_become_plain_json() {
        let item: serde_dynamo::Item = serde_json::from_value(json!({
            "id": {"S": "u1"}, "age": {"N": "42"}, "ratio": {"N": "0.5"},
            "admin": {"BOOL": false}, "gone": {"NULL": true}, "blob": {"B": "aGk="},
            "tags": {"SS": ["a", "b"]}, "scores": {"NS": ["1", "2"]},
            "profile": {"M": {"name": {"S": "Ada"}, "langs": {"L": [{"S": "en"}, {"N": "7"}]}}}
        }))
        .unwrap();
        assert_eq!(
            dynamodb_to_json(item),
            json!({
                "id": "u1", "age": 42, "ratio": 0.5, "admin": false, "gone": null, "blob": "aGk=",
                "tags": ["a", "b"], "scores": [1, 2],
                "profile": {"name": "Ada", "langs": ["en", 7]}
            })
        );
    }
}
