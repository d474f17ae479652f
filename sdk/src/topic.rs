//! SNS, to the topics of the manifest's `grants.topics`.

use serde_json::json;

use crate::host::{Error, call};

/// Publishes `message` (text, at most 256 KiB); the message id.
pub fn publish(topic: &str, message: &str, subject: Option<&str>) -> Result<String, Error> {
    let args = json!({"topic": topic, "subject": subject});
    let (header, _) = call("topic.publish", args, message.as_bytes())?;
    Ok(header["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}
