//! Firehose data transformation: `invocationId`, `deliveryStreamArn` and `records`. Each
//! record's data is decoded. Every record goes back (`{"records": [{recordId, result, data}]}`):
//! the function returns the new data (its output as it is), or an object
//! `{"result": "Ok"|"Dropped"|"ProcessingFailed", "data": ..., "metadata": {...}}`; a record
//! whose call failed, did not run or has no hook goes back `ProcessingFailed` with its data as
//! it came, so Firehose keeps it in its error output. With several functions hooked to one
//! stream, the data is the output of the first by name.

use base64::Engine as _;
use serde_json::{Value, json};

use super::batch::{Batch, Record, Source, arn_resource, decode_base64};
use super::deliver::Outcome;
use super::hook::named_hook;
use super::kind::HookKind;
use crate::error::Error;

named_hook!(
    /// `{type: firehose, delivery_stream: clicks}`: a delivery stream, by name.
    FirehoseHook, delivery_stream, "delivery stream"
);

const RESULTS: &[&str] = &["Ok", "Dropped", "ProcessingFailed"];

/// A Firehose transformation batch, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Result<Batch, Error>> {
    event.get("invocationId")?;
    let arn = event.get("deliveryStreamArn")?.as_str()?;
    let Some(raws) = event.get("records").and_then(Value::as_array) else {
        return Some(Err(Error::InvalidRequest(
            "Firehose event: `records` must be an array".to_string(),
        )));
    };
    let stream = arn_resource(arn, "deliverystream").unwrap_or(arn);
    let mut records = Vec::with_capacity(raws.len());
    for raw in raws {
        let Some(id) = raw["recordId"].as_str() else {
            return Some(Err(Error::InvalidRequest(
                "Firehose event: a record lacks `recordId`".to_string(),
            )));
        };
        // An MSK-sourced stream carries the payload as `kafkaRecordValue`.
        let encoded = raw["data"].as_str().or(raw["kafkaRecordValue"].as_str());
        let (data, is_base64_encoded) = encoded
            .and_then(decode_base64)
            .unwrap_or((Value::Null, false));
        let fields = json!({
            "delivery_stream": stream,
            "record_id": id,
            "data": data,
            "is_base64_encoded": is_base64_encoded,
            "arrival_time": raw["approximateArrivalTimestamp"],
            "metadata": raw.get("kinesisRecordMetadata").cloned().unwrap_or(Value::Null),
        });
        let label = format!("firehose delivery stream `{stream}`");
        let source = Source::new(HookKind::Firehose, stream, label);
        records.push(Record::new(source, Some(id.to_string()), fields, raw));
    }
    Some(Ok(Batch::new(records, reply, false)))
}

/// Every record back, in order, with its result and data.
fn reply(batch: &Batch, outcomes: &[Outcome]) -> Result<Value, Error> {
    let records: Vec<Value> = batch
        .records
        .iter()
        .zip(outcomes)
        .map(|(record, outcome)| {
            let field = payload_field(record);
            let original = record.raw[field].as_str().unwrap_or_default();
            let failed =
                || json!({"recordId": record.id, "result": "ProcessingFailed", field: original});
            match outcome {
                Outcome::Delivered(output) => transformed(record, output).unwrap_or_else(failed),
                Outcome::Failed(_) | Outcome::NotRun(_) => failed(),
            }
        })
        .collect();
    Ok(json!({"records": records}))
}

/// The field a record's payload travels in, both ways: `data`, or `kafkaRecordValue` for a
/// stream whose source is MSK.
fn payload_field(record: &Record) -> &'static str {
    match record.raw.get("kafkaRecordValue") {
        Some(_) => "kafkaRecordValue",
        None => "data",
    }
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A record's answer from its function's output; `None` if the output is not one (the record
/// is then `ProcessingFailed`, and the log says why).
fn transformed(record: &Record, output: &[u8]) -> Option<Value> {
    let field = payload_field(record);
    let parsed: Option<Value> = serde_json::from_slice(output).ok();
    let Some(Value::Object(object)) = parsed.as_ref().filter(|v| v.get("result").is_some()) else {
        return Some(json!({"recordId": record.id, "result": "Ok", field: encode(output)}));
    };
    let result = object["result"].as_str().filter(|r| RESULTS.contains(r));
    let Some(result) = result else {
        tracing::warn!(
            record = %record.describe(),
            result = %object["result"],
            "firehose record answered ProcessingFailed: `result` must be Ok, Dropped or ProcessingFailed"
        );
        return None;
    };
    let data = match object.get("data") {
        None | Some(Value::Null) => record.raw[field].as_str().unwrap_or_default().to_string(),
        Some(Value::String(text)) => encode(text.as_bytes()),
        Some(other) => encode(other.to_string().as_bytes()),
    };
    let mut answer = json!({"recordId": record.id, "result": result, field: data});
    if let Some(metadata) = object.get("metadata").filter(|m| m.is_object()) {
        answer["metadata"] = metadata.clone();
    }
    Some(answer)
}
