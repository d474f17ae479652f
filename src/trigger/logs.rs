//! CloudWatch Logs subscription filters: `{"awslogs": {"data": <base64 of gzip of JSON>}}`. Each
//! log event of a `DATA_MESSAGE` is a record; a `CONTROL_MESSAGE` (a reachability check) has
//! none and is answered as delivered. Logs invoke asynchronously: a failed record fails the
//! invocation, and Lambda retries it.

use std::io::Read;

use base64::Engine as _;
use serde_json::{Value, json};

use super::batch::{self, Batch, Record, Source};
use super::hook::named_hook;
use super::kind::HookKind;
use crate::error::Error;

named_hook!(
    /// `{type: logs, log_group: /aws/lambda/orders}`: a log group, by name.
    LogsHook, log_group, "log group"
);

/// The largest payload a subscription is decompressed to (Lambda's own payload is 6 MB).
const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

/// A logs subscription's batch, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Result<Batch, Error>> {
    let data = event.get("awslogs")?.get("data")?.as_str()?;
    Some(batch_of(data))
}

fn batch_of(data: &str) -> Result<Batch, Error> {
    let invalid = |why: String| Error::InvalidRequest(format!("CloudWatch Logs event: {why}"));
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|error| invalid(format!("`awslogs.data` is not base64 ({error})")))?;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .take(MAX_PAYLOAD)
        .read_to_end(&mut text)
        .map_err(|error| invalid(format!("`awslogs.data` is not gzip ({error})")))?;
    let payload: Value = serde_json::from_slice(&text)
        .map_err(|error| invalid(format!("the payload is not JSON ({error})")))?;
    if payload["messageType"] == "CONTROL_MESSAGE" {
        return Ok(Batch::new(Vec::new(), batch::fail_invocation, false));
    }
    let group = payload["logGroup"].as_str().unwrap_or_default();
    let mut records = Vec::new();
    for raw in payload["logEvents"].as_array().into_iter().flatten() {
        let fields = json!({
            "log_group": group,
            "log_stream": payload["logStream"],
            "owner": payload["owner"],
            "subscription_filters": payload["subscriptionFilters"],
            "id": raw["id"],
            "timestamp": raw["timestamp"],
            "message": raw["message"],
        });
        let source = Source::new(HookKind::Logs, group, format!("log group `{group}`"));
        let id = raw["id"].as_str().map(str::to_string);
        records.push(Record::new(source, id, fields, raw));
    }
    Ok(Batch::new(records, batch::fail_invocation, false))
}
