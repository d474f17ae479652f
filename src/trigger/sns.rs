//! SNS: `Records` of `EventSource: aws:sns`. SNS invokes asynchronously: a failed record fails
//! the invocation, and Lambda retries it.

use aws_lambda_events::sns::SnsEvent;
use serde_json::{Map, Value, json};

use super::batch::{self, Batch, Record, Source, arn_name};
use super::hook::named_hook;
use super::kind::HookKind;
use super::parse;
use crate::error::Error;

named_hook!(
    /// `{type: sns, topic: alerts}`: an SNS topic, by name.
    SnsHook, topic, "topic"
);

pub(super) fn recognize(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: SnsEvent = parse(event, "SNS notification")?;
    let records = parsed
        .records
        .into_iter()
        .zip(raws)
        .map(|(record, raw)| {
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
            let label = format!("sns topic `{topic}`");
            Record::new(Source::new(HookKind::Sns, topic, label), None, fields, raw)
        })
        .collect();
    Ok(Batch::new(records, batch::fail_invocation, false))
}
