//! S3 notifications: `Records` of `eventSource: aws:s3`, one record per object event. Answered
//! by failing the invocation when a record failed (S3 invokes asynchronously; Lambda retries).

use aws_lambda_events::s3::S3Event;
use serde_json::{Value, json};

use super::batch::{self, Batch, Record, Source};
use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::parse;
use crate::error::Error;

/// `{type: s3, bucket: uploads, prefix: in/, suffix: .png, events: ["ObjectCreated:*"]}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Hook {
    pub bucket: String,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// Event-name globs such as `ObjectCreated:*` (an `s3:` prefix, as S3 writes them, is
    /// allowed); default every event.
    pub events: Option<Vec<String>>,
    pub entrypoint: Option<String>,
}

impl HookSchema for S3Hook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        checks.not_empty("bucket", &self.bucket);
        checks.entrypoint(self.entrypoint.as_deref());
        let mut names = Vec::new();
        for (index, event) in self.events.iter().flatten().enumerate() {
            let checked = match rules {
                Rules::All => check_s3_event(event),
                Rules::Serving => check_s3_glob(event),
            };
            if checks.check(format!("events[{index}]"), checked).is_some() {
                names.push(event.strip_prefix("s3:").unwrap_or(event));
            }
        }
        let events = match &self.events {
            Some(_) => checks.check("events", Pattern::globs(names)),
            None => None,
        };
        let compiled = Compiled::resource(&self.bucket)
            .with("key", self.prefix.clone().map(Pattern::Prefix))
            .with("key", self.suffix.clone().map(Pattern::Suffix))
            .with("event", events);
        checks.done(compiled)
    }

    fn describe(&self) -> String {
        let mut text = format!("bucket {}", self.bucket);
        if let Some(prefix) = &self.prefix {
            text.push_str(&format!(", prefix {prefix}"));
        }
        if let Some(suffix) = &self.suffix {
            text.push_str(&format!(", suffix {suffix}"));
        }
        match &self.events {
            Some(events) => text.push_str(&format!(", {}", events.join(","))),
            None => text.push_str(", any event"),
        }
        text
    }
}

/// The event names S3 sends (without their `s3:` prefix), which an S3 hook's globs must reach.
const S3_EVENT_NAMES: &[&str] = &[
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
    "ObjectRestore:Post",
    "ObjectRestore:Completed",
    "ObjectRestore:Delete",
    "ReducedRedundancyLostObject",
    "Replication:OperationFailedReplication",
    "Replication:OperationMissedThreshold",
    "Replication:OperationReplicatedAfterThreshold",
    "Replication:OperationNotTracked",
    "LifecycleExpiration:Delete",
    "LifecycleExpiration:DeleteMarkerCreated",
    "LifecycleTransition",
    "IntelligentTiering",
    "ObjectTagging:Put",
    "ObjectTagging:Delete",
    "ObjectAcl:Put",
    "TestEvent",
];

/// An S3 event-name glob that parses (what the runtime has always required).
fn check_s3_glob(event: &str) -> Result<(), String> {
    let name = event.strip_prefix("s3:").unwrap_or(event);
    if name.trim().is_empty() || globset::Glob::new(name).is_err() {
        return Err(format!(
            "`{event}` must be an event name glob such as ObjectCreated:*"
        ));
    }
    Ok(())
}

/// Checks an S3 event-name glob: it must reach at least one event S3 sends.
fn check_s3_event(event: &str) -> Result<(), String> {
    let name = event.strip_prefix("s3:").unwrap_or(event);
    let glob = globset::Glob::new(name)
        .ok()
        .filter(|_| !name.trim().is_empty())
        .map(|glob| glob.compile_matcher());
    match glob {
        Some(glob) if S3_EVENT_NAMES.iter().any(|known| glob.is_match(known)) => Ok(()),
        Some(_) => Err(format!(
            "`{event}` matches no S3 event name; S3 sends ObjectCreated:*, ObjectRemoved:*, \
             ObjectRestore:*, ObjectTagging:*, ObjectAcl:Put, LifecycleExpiration:*, \
             LifecycleTransition, IntelligentTiering, Replication:*, ReducedRedundancyLostObject"
        )),
        None => Err(format!(
            "`{event}` must be an event name glob such as ObjectCreated:*"
        )),
    }
}

/// An S3 notification key: form-encoded (`+` is a space) and percent-encoded.
fn decode_s3_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The batch of an S3 notification.
pub(super) fn recognize(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: S3Event = parse(event, "S3 notification")?;
    let records = parsed
        .records
        .into_iter()
        .zip(raws)
        .map(|(record, raw)| {
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
            let source = Source::new(
                HookKind::S3,
                bucket.clone(),
                format!("s3 {event} s3://{bucket}/{key}"),
            )
            .with("key", key)
            .with("event", event);
            Record::new(source, None, fields, raw)
        })
        .collect();
    Ok(Batch::new(records, batch::fail_invocation, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys_are_url_decoded() {
        assert_eq!(decode_s3_key("a+b%2Fc.png"), "a b/c.png");
        assert_eq!(decode_s3_key("plain/key.txt"), "plain/key.txt");
        assert_eq!(decode_s3_key("caf%C3%A9+%2B1"), "café +1");
    }

    #[test]
    fn s3_event_globs_must_reach_an_event() {
        for good in [
            "*",
            "s3:*",
            "ObjectCreated:*",
            "s3:ObjectRemoved:Delete",
            "Object*",
        ] {
            assert!(check_s3_event(good).is_ok(), "{good}");
        }
        for bad in [
            "ObjectCreatd:*",
            "Nonsense",
            "",
            "s3:",
            "ObjectCreated:Putt",
            "[bad",
        ] {
            assert!(check_s3_event(bad).is_err(), "{bad}");
        }
    }
}
