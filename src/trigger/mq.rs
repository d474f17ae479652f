//! Amazon MQ: ActiveMQ (`eventSource: aws:mq`, `messages`) and RabbitMQ (`aws:rmq`,
//! `rmqMessagesByQueue` keyed `<queue>::<virtual host>`). Each message's data is decoded. MQ has
//! no partial batch response: a failed message fails the invocation, and the broker redelivers
//! the batch.

use serde_json::{Value, json};

use super::batch::{self, Batch, Record, Source, decode_base64};
use super::hook::named_hook;
use super::kind::HookKind;
use crate::error::Error;

named_hook!(
    /// `{type: mq, queue: orders}`: a broker queue, by name.
    MqHook, queue, "queue"
);

/// An Amazon MQ batch, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Result<Batch, Error>> {
    let broker = event.get("eventSourceArn").cloned().unwrap_or(Value::Null);
    let mut records = Vec::new();
    match event.get("eventSource")?.as_str()? {
        "aws:mq" => {
            for raw in event.get("messages")?.as_array()? {
                let queue = raw["destination"]["physicalName"]
                    .as_str()
                    .unwrap_or_default();
                let properties = json!({
                    "message_type": raw["messageType"],
                    "delivery_mode": raw["deliveryMode"],
                    "timestamp": raw["timestamp"],
                    "correlation_id": raw["correlationID"],
                    "reply_to": raw["replyTo"],
                    "redelivered": raw["redelivered"],
                    "expiration": raw["expiration"],
                    "priority": raw["priority"],
                    "properties": raw["properties"],
                });
                records.push(message(
                    queue,
                    raw,
                    raw["messageID"].as_str(),
                    properties,
                    &broker,
                ));
            }
        }
        "aws:rmq" => {
            for (key, list) in event.get("rmqMessagesByQueue")?.as_object()? {
                // `<queue>::<virtual host>`; a queue name may hold `::` itself.
                let queue = key
                    .rsplit_once("::")
                    .map_or(key.as_str(), |(queue, _)| queue);
                for raw in list.as_array().into_iter().flatten() {
                    let basic = &raw["basicProperties"];
                    let id = basic["messageId"].as_str();
                    let mut properties = basic.as_object().cloned().unwrap_or_default();
                    properties.insert("redelivered".into(), raw["redelivered"].clone());
                    let properties = Value::Object(properties);
                    records.push(message(queue, raw, id, properties, &broker));
                }
            }
        }
        _ => return None,
    }
    Some(Ok(Batch::new(records, batch::fail_invocation, false)))
}

fn message(
    queue: &str,
    raw: &Value,
    id: Option<&str>,
    properties: Value,
    broker: &Value,
) -> Record {
    let (data, is_base64_encoded) = match raw["data"].as_str() {
        Some(text) => decode_base64(text).unwrap_or((Value::String(text.into()), false)),
        None => (Value::Null, false),
    };
    let fields = json!({
        "queue": queue,
        "message_id": id,
        "data": data,
        "is_base64_encoded": is_base64_encoded,
        "properties": properties,
        "broker": broker,
    });
    let source = Source::new(HookKind::Mq, queue, format!("mq queue `{queue}`"));
    Record::new(source, id.map(str::to_string), fields, raw)
}
