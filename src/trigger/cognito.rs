//! Cognito user pool triggers: an event with `triggerSource` and `userPoolId`. The function's
//! output (a JSON object) is merged into the event's `response`, and the event goes back: what
//! Cognito reads. An empty output (or `null`) leaves `response` as it came.

use serde_json::{Value, json};

use super::hook::{Checks, Compiled, HookProblem, HookSchema, Pattern, Rules};
use super::kind::HookKind;
use super::request::{Answer, Called, Request};

/// `{type: cognito, trigger: "PreSignUp_*", user_pool: us-east-1_EXAMPLE}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CognitoHook {
    /// A `triggerSource` glob: `PreSignUp_SignUp`, `PreSignUp_*`, `TokenGeneration_*`.
    pub trigger: String,
    pub user_pool: Option<String>,
    pub entrypoint: Option<String>,
}

impl HookSchema for CognitoHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        let trigger = checks.check("trigger", Pattern::glob(&self.trigger));
        if let Some(pool) = &self.user_pool {
            checks.not_empty("user_pool", pool);
        }
        checks.entrypoint(self.entrypoint.as_deref());
        let compiled = Compiled::default()
            .with("trigger", trigger)
            .with("user_pool", self.user_pool.clone().map(Pattern::Is));
        checks.done(compiled)
    }

    fn describe(&self) -> String {
        match &self.user_pool {
            Some(pool) => format!("trigger {}, pool {pool}", self.trigger),
            None => format!("trigger {}", self.trigger),
        }
    }
}

/// A Cognito trigger's request, or `None` if `event` is not one.
pub(super) fn recognize(event: &Value) -> Option<Request> {
    let trigger = event.get("triggerSource")?.as_str()?;
    let pool = event.get("userPoolId")?.as_str()?;
    let fields = json!({
        "trigger_source": trigger,
        "user_pool": pool,
        "user_name": event.get("userName").cloned().unwrap_or(Value::Null),
        "region": event.get("region").cloned().unwrap_or(Value::Null),
        "version": event.get("version").cloned().unwrap_or(Value::Null),
        "caller_context": event.get("callerContext").cloned().unwrap_or(Value::Null),
        "request": event.get("request").cloned().unwrap_or(Value::Null),
        "response": event.get("response").cloned().unwrap_or(Value::Null),
    });
    let label = format!("cognito trigger `{trigger}` of pool `{pool}`");
    Some(
        Request::new(HookKind::Cognito, label, fields, event)
            .with("trigger", trigger)
            .with("user_pool", pool)
            .answered_by(answer),
    )
}

fn answer(request: &Request, called: Called<'_>) -> Answer {
    Answer::value(called.result().and_then(|output| {
        let mut event = request.raw.clone();
        if output.iter().all(u8::is_ascii_whitespace) {
            return Ok(event);
        }
        let response = match serde_json::from_slice::<Value>(output) {
            Ok(Value::Null) => return Ok(event),
            Ok(Value::Object(response)) => response,
            _ => {
                return Err(called.invalid(format!(
                    "a cognito function must return a JSON object, the fields of `response` \
                     (for {}: {}), got {}",
                    request.fields["trigger_source"]
                        .as_str()
                        .unwrap_or_default(),
                    response_fields(
                        request.fields["trigger_source"]
                            .as_str()
                            .unwrap_or_default()
                    ),
                    super::request::preview(output)
                )));
            }
        };
        match event.get_mut("response") {
            Some(Value::Object(current)) => current.extend(response),
            _ => event["response"] = Value::Object(response),
        }
        Ok(event)
    }))
}

/// The `response` fields a trigger source has, for messages.
fn response_fields(trigger: &str) -> &'static str {
    match trigger.split('_').next().unwrap_or_default() {
        "PreSignUp" => "autoConfirmUser, autoVerifyEmail, autoVerifyPhone",
        "TokenGeneration" => "claimsOverrideDetails or claimsAndScopeOverrideDetails",
        "CustomMessage" => "smsMessage, emailMessage, emailSubject",
        "UserMigration" => "userAttributes, finalUserStatus, messageAction",
        "DefineAuthChallenge" => "challengeName, issueTokens, failAuthentication",
        "CreateAuthChallenge" => "publicChallengeParameters, privateChallengeParameters",
        "VerifyAuthChallengeResponse" => "answerCorrect",
        _ => "see the trigger's documentation",
    }
}
