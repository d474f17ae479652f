//! The kinds of hook, each spelled once: the manifest's `type`, the router's index, metrics'
//! `trigger`, the CLI's order and the template check all use [`HookKind`].

use std::fmt;
use std::str::FromStr;

/// How a kind is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// One input, one answer, from the one function the request routes to.
    Request,
    /// Records, each run on every function hooked to it, with per-record outcomes.
    Batch,
}

macro_rules! hook_kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal, $family:ident, [$($sam:literal),*];)*) => {
        /// A kind of hook, in the order `wasm-lambda routes` lists them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum HookKind {
            $($(#[$doc])* $kind,)*
        }

        impl HookKind {
            /// Every kind, in listing order.
            pub const ALL: &'static [HookKind] = &[$(HookKind::$kind),*];

            /// The name manifests write as the hook's `type`, also the `trigger` a function
            /// receives and the metrics' `trigger` dimension.
            pub fn name(self) -> &'static str {
                match self {
                    $(HookKind::$kind => $name,)*
                }
            }

            pub fn family(self) -> Family {
                match self {
                    $(HookKind::$kind => Family::$family,)*
                }
            }

            /// The SAM event source types (`Events: {X: {Type: ...}}`) that deliver this kind to
            /// a function; empty when SAM declares the source elsewhere (an API's authorizer, an
            /// AppSync data source, ...), so a template cannot be checked for it.
            pub fn sam_event_types(self) -> &'static [&'static str] {
                match self {
                    $(HookKind::$kind => &[$($sam),*],)*
                }
            }
        }
    };
}

hook_kinds! {
    /// API Gateway REST and HTTP APIs, Function URLs, ALB, VPC Lattice.
    Http = "http", Request, ["Api", "HttpApi"];
    /// API Gateway WebSocket routes.
    Websocket = "websocket", Request, [];
    /// API Gateway Lambda authorizers.
    Authorizer = "authorizer", Request, [];
    /// Cognito user pool triggers.
    Cognito = "cognito", Request, ["Cognito"];
    /// AppSync direct Lambda resolvers.
    Appsync = "appsync", Request, [];
    /// Bedrock agent action groups.
    BedrockAgent = "bedrock_agent", Request, [];
    /// CloudFormation custom resources.
    CustomResource = "custom_resource", Request, [];
    /// SES receipt rules.
    Ses = "ses", Request, [];
    /// S3 notifications.
    S3 = "s3", Batch, ["S3"];
    Sqs = "sqs", Batch, ["SQS"];
    Sns = "sns", Batch, ["SNS"];
    /// DynamoDB Streams and DocumentDB change streams.
    Database = "database", Batch, ["DynamoDB", "DocumentDB"];
    /// Kinesis data streams.
    Stream = "stream", Batch, ["Kinesis"];
    /// EventBridge events.
    Event = "event", Batch, ["EventBridgeRule", "CloudWatchEvent"];
    /// EventBridge schedule rules.
    Schedule = "schedule", Batch, ["Schedule"];
    /// Amazon MSK and self-managed Kafka.
    Kafka = "kafka", Batch, ["MSK", "SelfManagedKafka"];
    /// Amazon MQ (ActiveMQ and RabbitMQ).
    Mq = "mq", Batch, ["MQ"];
    /// Firehose data transformation.
    Firehose = "firehose", Batch, [];
    /// CloudWatch Logs subscription filters.
    Logs = "logs", Batch, ["CloudWatchLogs"];
    /// Any event no other kind recognizes.
    Raw = "raw", Request, [];
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HookKind {
    type Err = String;

    fn from_str(text: &str) -> Result<HookKind, String> {
        HookKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                let names: Vec<String> = HookKind::ALL
                    .iter()
                    .map(|k| format!("`{}`", k.name()))
                    .collect();
                format!(
                    "unknown hook type `{text}`, expected one of {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in HookKind::ALL {
            assert_eq!(kind.name().parse::<HookKind>(), Ok(*kind));
        }
        assert!(
            "ftp"
                .parse::<HookKind>()
                .unwrap_err()
                .contains("bedrock_agent")
        );
    }
}
