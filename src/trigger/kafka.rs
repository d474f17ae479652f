//! Amazon MSK and self-managed Kafka: `eventSource` `aws:kafka` or `SelfManagedKafka` with
//! `records` keyed `<topic>-<partition>`. Each record's key and value are decoded (text, or
//! base64 flagged as such) and its headers read as text. A partition's records run in order:
//! after one fails, its later records do not run. Failures are answered as Lambda's partial
//! batch response for Kafka, `{"batchItemFailures": [{"itemIdentifier": {"partition":
//! "<topic>-<partition>", "offset": N}}]}`, naming every record not delivered.

use serde_json::{Map, Value, json};

use super::batch::{self, Batch, Record, Source, decode_base64};
use super::deliver::Outcome;
use super::hook::named_hook;
use super::kind::HookKind;
use crate::error::Error;

named_hook!(
    /// `{type: kafka, topic: orders}`: a Kafka topic, by name.
    KafkaHook, topic, "topic"
);

/// A Kafka batch, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Result<Batch, Error>> {
    let source = event.get("eventSource")?.as_str()?;
    if !matches!(
        source,
        "aws:kafka" | "SelfManagedKafka" | "aws:SelfManagedKafka"
    ) {
        return None;
    }
    let Some(partitions) = event.get("records").and_then(Value::as_object) else {
        return Some(Err(Error::InvalidRequest(
            "Kafka event: `records` must be an object of `<topic>-<partition>` lists".to_string(),
        )));
    };
    let cluster = event
        .get("eventSourceArn")
        .or_else(|| event.get("bootstrapServers"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut records = Vec::new();
    for (partition_key, list) in partitions {
        for raw in list.as_array().into_iter().flatten() {
            let (Some(topic), Some(partition), Some(offset)) = (
                raw["topic"].as_str(),
                raw["partition"].as_i64(),
                raw["offset"].as_i64(),
            ) else {
                return Some(Err(Error::InvalidRequest(format!(
                    "Kafka event: a record of `{partition_key}` lacks `topic`, `partition` or \
                     `offset`"
                ))));
            };
            let decoded = |field: &str| match raw.get(field).and_then(Value::as_str) {
                Some(text) => decode_base64(text).unwrap_or((Value::String(text.into()), false)),
                None => (Value::Null, false),
            };
            let (key, key_base64) = decoded("key");
            let (value, value_base64) = decoded("value");
            let fields = json!({
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "timestamp": raw["timestamp"],
                "timestamp_type": raw["timestampType"],
                "key": key,
                "key_is_base64_encoded": key_base64,
                "value": value,
                "value_is_base64_encoded": value_base64,
                "headers": headers(&raw["headers"]),
                "cluster": cluster,
            });
            let label = format!("kafka topic `{topic}` partition {partition}");
            let source = Source::new(HookKind::Kafka, topic, label);
            let id = format!("offset {offset}");
            let mut record = Record::new(source, Some(id), fields, raw);
            record.partition = Some(partition_key.clone());
            records.push(record);
        }
    }
    Some(Ok(Batch::new(records, reply, true)))
}

/// `[{"name": [bytes]}, ...]` as `{"name": "text"}` (non-UTF-8 values as base64; a repeated
/// header keeps its last value).
fn headers(headers: &Value) -> Value {
    let mut out = Map::new();
    for header in headers.as_array().into_iter().flatten() {
        for (name, bytes) in header.as_object().into_iter().flatten() {
            let bytes: Vec<u8> = bytes
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            out.insert(name.clone(), batch::text_or_base64(bytes).0);
        }
    }
    Value::Object(out)
}

fn reply(batch: &Batch, outcomes: &[Outcome]) -> Result<Value, Error> {
    let failures: Vec<Value> = batch::failed(batch, outcomes)
        .into_iter()
        .map(|(record, _)| {
            json!({"itemIdentifier": {
                "partition": record.partition,
                "offset": record.fields["offset"],
            }})
        })
        .collect();
    Ok(json!({"batchItemFailures": failures}))
}
