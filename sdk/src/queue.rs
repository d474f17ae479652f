//! SQS, to the queues of the manifest's `grants.queues`.

use std::collections::BTreeMap;

use serde_json::json;

use crate::host::{Error, call};

/// Options of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// String message attributes.
    pub attributes: BTreeMap<String, String>,
    /// FIFO queues: the message group.
    pub group_id: Option<String>,
    /// FIFO queues: the deduplication id.
    pub dedup_id: Option<String>,
}

/// Sends `body` (text, at most 256 KiB); the message id.
pub fn send(queue: &str, body: &str) -> Result<String, Error> {
    send_with(queue, body, &Message::default())
}

pub fn send_with(queue: &str, body: &str, message: &Message) -> Result<String, Error> {
    let args = json!({
        "queue": queue, "attributes": message.attributes,
        "group_id": message.group_id, "dedup_id": message.dedup_id,
    });
    let (header, _) = call("queue.send", args, body.as_bytes())?;
    Ok(header["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}
