//! SES receipt rules: `Records` of `eventSource: aws:ses` (one message). A hook may name a
//! recipient glob. Answered `{"disposition": ...}` from the function's output (`CONTINUE`,
//! `STOP_RULE` or `STOP_RULE_SET`, given as the output or its `disposition` field); `CONTINUE`
//! when it names none. SES reads the answer when the rule invokes with `RequestResponse`.

use serde_json::{Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::request::{Answer, Called, Request};

const DISPOSITIONS: &[&str] = &["CONTINUE", "STOP_RULE", "STOP_RULE_SET"];

/// `{type: ses, recipient: "orders@*"}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesHook {
    /// A recipient glob; default every recipient.
    pub recipient: Option<String>,
    pub entrypoint: Option<String>,
}

impl HookSchema for SesHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        let recipient = match &self.recipient {
            Some(glob) => checks.check("recipient", Pattern::glob(&glob.to_ascii_lowercase())),
            None => None,
        };
        checks.entrypoint(self.entrypoint.as_deref());
        checks.done(Compiled::default().with("recipient", recipient))
    }

    fn describe(&self) -> String {
        match &self.recipient {
            Some(recipient) => format!("recipient {recipient}"),
            None => "any recipient".to_string(),
        }
    }
}

/// An SES receipt's request, from the first (only) record of a `Records` event.
pub(super) fn recognize(event: &Value, record: &Value) -> Request {
    let ses = &record["ses"];
    let mail = &ses["mail"];
    let recipients: Vec<String> = ses["receipt"]["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect();
    let fields = json!({
        "message_id": mail["messageId"],
        "from": mail["source"],
        "subject": mail["commonHeaders"]["subject"],
        "recipients": recipients,
        "mail": mail,
        "receipt": ses["receipt"],
    });
    let label = format!(
        "ses message `{}` to {}",
        mail["messageId"].as_str().unwrap_or_default(),
        recipients.join(", ")
    );
    let mut request = Request::new(HookKind::Ses, label, fields, event).answered_by(answer);
    for recipient in recipients {
        request = request.with("recipient", recipient);
    }
    request
}

fn answer(_request: &Request, called: Called<'_>) -> Answer {
    Answer::value(called.result().map(|output| {
        let parsed: Value = serde_json::from_slice(output)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(output).trim().to_string()));
        let disposition = match &parsed {
            Value::String(text) if text.is_empty() => "CONTINUE".to_string(),
            Value::String(text) => text.clone(),
            Value::Object(object) => match object.get("disposition") {
                None | Some(Value::Null) => "CONTINUE".to_string(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            },
            Value::Null => "CONTINUE".to_string(),
            other => other.to_string(),
        };
        // SES reads an unknown disposition as CONTINUE; say so rather than fail the mail.
        if !DISPOSITIONS.contains(&disposition.as_str()) {
            tracing::warn!(
                function = called.function,
                disposition = %disposition,
                "not a disposition (CONTINUE, STOP_RULE or STOP_RULE_SET): answered CONTINUE"
            );
            return json!({"disposition": "CONTINUE"});
        }
        json!({"disposition": disposition})
    }))
}
