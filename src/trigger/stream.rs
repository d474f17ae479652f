//! Kinesis data streams: `Records` of `eventSource: aws:kinesis`. A shard's records run in
//! order; failures are named in `batchItemFailures` by sequence number.

use aws_lambda_events::kinesis::KinesisEvent;
use serde_json::{Value, json};

use super::batch::{self, Batch, Record, Source, arn_resource, text_or_base64};
use super::hook::named_hook;
use super::kind::HookKind;
use super::parse;
use crate::error::Error;

named_hook!(
    /// `{type: stream, stream: clicks}`: a Kinesis stream, by name.
    StreamHook, stream, "stream"
);

pub(super) fn recognize(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
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
            let (data, is_base64_encoded) = text_or_base64(kinesis.data.0);
            let fields = json!({
                "stream": stream,
                "partition_key": kinesis.partition_key,
                "sequence_number": kinesis.sequence_number,
                "data": data,
                "is_base64_encoded": is_base64_encoded,
                "arrival_time": raw["kinesis"]["approximateArrivalTimestamp"],
            });
            let label = format!("stream `{stream}`");
            let source = Source::new(HookKind::Stream, stream, label);
            Record::new(source, Some(kinesis.sequence_number), fields, raw)
        })
        .collect();
    Ok(Batch::new(records, batch::item_failures, true))
}
