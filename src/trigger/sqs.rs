//! SQS: `Records` of `eventSource: aws:sqs`. Failed messages are named in `batchItemFailures`
//! by message id; a FIFO queue's messages run in order.

use aws_lambda_events::sqs::SqsEvent;
use serde_json::{Value, json};

use super::batch::{self, Batch, Record, Source, arn_name};
use super::hook::named_hook;
use super::kind::HookKind;
use super::parse;
use crate::error::Error;

named_hook!(
    /// `{type: sqs, queue: jobs}`: an SQS queue, by name.
    SqsHook, queue, "queue"
);

pub(super) fn recognize(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: SqsEvent = parse(event, "SQS event")?;
    let mut fifo = false;
    let records = parsed
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
            let source = Source::new(HookKind::Sqs, queue, format!("sqs queue `{queue}`"));
            Record::new(source, message.message_id, fields, raw)
        })
        .collect();
    Ok(Batch::new(records, batch::item_failures, fifo))
}
