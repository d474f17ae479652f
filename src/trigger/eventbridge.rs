//! EventBridge: an event (`source`, `detail-type`, `detail`) is one record; a rule's scheduled
//! event (`aws.events`, `Scheduled Event`) routes to `schedule` hooks by rule name. Both are
//! asynchronous: a failure fails the invocation, and Lambda retries it.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{Value, json};

use super::batch::{self, Batch, Record, Source, arn_resource};
use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules, named_hook};
use super::kind::HookKind;
use super::parse;
use crate::error::Error;

/// The `source` and `detail-type` EventBridge gives a rule's scheduled event.
const SCHEDULE_SOURCE: &str = "aws.events";
const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";

named_hook!(
    /// `{type: schedule, rule: nightly}`: an EventBridge schedule rule, by name.
    ScheduleHook, rule, "rule"
);

/// `{type: event, source: com.example.orders, detail_type: OrderPlaced}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHook {
    pub source: String,
    pub detail_type: Option<String>,
    pub entrypoint: Option<String>,
}

impl HookSchema for EventHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        checks.not_empty("source", &self.source);
        checks.entrypoint(self.entrypoint.as_deref());
        let compiled = Compiled::resource(&self.source)
            .with("detail_type", self.detail_type.clone().map(Pattern::Is));
        checks.done(compiled)
    }

    fn describe(&self) -> String {
        match &self.detail_type {
            Some(detail_type) => format!("source {}, {detail_type}", self.source),
            None => format!("source {}", self.source),
        }
    }
}

/// An EventBridge event, or `None` if `event` has no `source` and `detail-type`.
pub(super) fn recognize(event: &Value) -> Option<Result<Batch, Error>> {
    let object = event.as_object()?;
    if !(object.contains_key("detail-type") && object.contains_key("source")) {
        return None;
    }
    Some(eventbridge(event))
}

fn eventbridge(event: &Value) -> Result<Batch, Error> {
    let parsed: EventBridgeEvent<Value> = parse(event, "EventBridge event")?;
    let resources = parsed.resources.unwrap_or_default();
    let (source, fields) =
        if parsed.source == SCHEDULE_SOURCE && parsed.detail_type == SCHEDULE_DETAIL_TYPE {
            let rule = resources
                .iter()
                .find_map(|arn| arn_resource(arn, "rule"))
                .unwrap_or_default()
                .to_string();
            let fields = json!({
                "rule": rule,
                "time": parsed.time,
                "id": parsed.id,
                "resources": resources,
            });
            let label = format!("schedule rule `{rule}`");
            (Source::new(HookKind::Schedule, rule, label), fields)
        } else {
            let fields = json!({
                "source": parsed.source,
                "detail_type": parsed.detail_type,
                "detail": parsed.detail,
                "time": parsed.time,
                "id": parsed.id,
                "account": parsed.account,
                "region": parsed.region,
                "resources": resources,
            });
            let label = format!("event `{}` `{}`", parsed.source, parsed.detail_type);
            let source = Source::new(HookKind::Event, parsed.source, label)
                .with("detail_type", parsed.detail_type);
            (source, fields)
        };
    Ok(Batch::new(
        vec![Record::new(source, None, fields, event)],
        batch::fail_invocation,
        false,
    ))
}
