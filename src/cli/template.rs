//! What a SAM template delivers to the bootstrap: the event sources wired to its function, each
//! under the names hooks may use for it (the resource's own name, or a `SOURCE_NAMES` entry).
//! `wasm-lambda validate` checks every hook against them.

use std::collections::BTreeSet;
use std::path::Path;

use globset::Glob;
use serde_yaml::Value;

use crate::manifest::Hook;
use crate::trigger::HookKind;
use crate::trigger::hook::HookSpec;
use crate::trigger::s3::S3Hook;

/// One event source of the bootstrap.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The hook kind it delivers.
    pub kind: Option<HookKind>,
    /// The event's name under the function's `Events`.
    pub event: String,
    /// The names a hook may use for its resource.
    pub names: BTreeSet<String>,
    /// SQS, DynamoDB and Kinesis: `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub reports_item_failures: bool,
    /// S3: the event types (`s3:ObjectCreated:*`) and key filters.
    pub s3_events: Vec<String>,
    pub s3_prefix: Option<String>,
    pub s3_suffix: Option<String>,
    /// EventBridge rules: the detail types the pattern lets through (empty: any).
    pub detail_types: Vec<String>,
}

/// The bootstrap's event sources in a template, and the resources grants may name.
#[derive(Debug, Clone)]
pub struct Template {
    pub file: String,
    pub sources: Vec<Source>,
    /// The names each bucket, queue and topic of the template is known by, by kind (`s3`,
    /// `queues`, `topics`).
    pub resources: std::collections::BTreeMap<&'static str, BTreeSet<String>>,
    /// Whether the bootstrap is given a key-value table (`KV_TABLE`).
    pub kv_table: bool,
}

/// The logical id a `!Ref X`, `!GetAtt X.Attr`, `{Ref: X}` or `{Fn::GetAtt: [X, Attr]}` points
/// at.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" || tagged.tag == "GetAtt" => {
            let target = tagged.value.as_str()?;
            Some(target.split('.').next().unwrap_or(target).to_string())
        }
        Value::Mapping(map) => {
            if let Some(target) = map.get("Ref").and_then(Value::as_str) {
                return Some(target.to_string());
            }
            let get_att = map.get("Fn::GetAtt")?;
            match get_att {
                Value::Sequence(parts) => parts.first()?.as_str().map(str::to_string),
                Value::String(target) => target.split('.').next().map(str::to_string),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The text of a plain string or of a `!Sub` / `Fn::Sub` template.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str().map(str::to_string),
        Value::Mapping(map) => map.get("Fn::Sub")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `uploads=${UploadsBucket},nightly=${AWS::StackName}-nightly` -> (name, expression) pairs.
fn source_names(value: Option<&Value>) -> Vec<(String, String)> {
    let Some(text) = value.and_then(text) else {
        return Vec::new();
    };
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, expression)| (name.trim().to_string(), expression.trim().to_string()))
        .collect()
}

/// The logical id an expression of `SOURCE_NAMES` names: `${Id}` or `${Id.Attr}`.
fn expression_target(expression: &str) -> Option<&str> {
    let inner = expression.strip_prefix("${")?.strip_suffix('}')?;
    Some(inner.split('.').next().unwrap_or(inner))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

impl Template {
    /// Reads the bootstrap's event sources from the template at `path`.
    pub fn load(path: &Path) -> Result<Template, String> {
        let file = path.display().to_string();
        let yaml = std::fs::read_to_string(path).map_err(|error| format!("{file}: {error}"))?;
        let document: Value =
            serde_yaml::from_str(&yaml).map_err(|error| format!("{file}: {error}"))?;
        let resources = document
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| format!("{file}: no Resources"))?;
        let is_bootstrap = |resource: &Value| {
            resource.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
                && (resource["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("bootstrap")
                    || resource["Properties"]["Handler"].as_str() == Some("bootstrap"))
        };
        let function = resources
            .values()
            .find(|resource| is_bootstrap(resource))
            .ok_or_else(|| {
                format!("{file}: no AWS::Serverless::Function builds the `bootstrap` binary")
            })?;
        let properties = &function["Properties"];
        let named = source_names(properties["Environment"]["Variables"].get("SOURCE_NAMES"));

        // The names a resource is known by: its own name property, and SOURCE_NAMES entries.
        let names_of = |id: &str, name_property: &str| -> BTreeSet<String> {
            let mut names: BTreeSet<String> = named
                .iter()
                .filter(|(_, expression)| expression_target(expression) == Some(id))
                .map(|(name, _)| name.clone())
                .collect();
            if let Some(own) = resources
                .get(id)
                .and_then(|r| r["Properties"].get(name_property))
                .and_then(Value::as_str)
            {
                names.insert(own.to_string());
            }
            names
        };

        let mut sources = Vec::new();
        if properties.get("FunctionUrlConfig").is_some() {
            sources.push(Source {
                kind: Some(HookKind::Http),
                event: "FunctionUrlConfig".to_string(),
                ..Source::default()
            });
        }
        let events = properties.get("Events").and_then(Value::as_mapping);
        for (event, definition) in events.into_iter().flatten() {
            let event = event.as_str().unwrap_or_default().to_string();
            let props = &definition["Properties"];
            let reports_item_failures = strings(props.get("FunctionResponseTypes"))
                .iter()
                .any(|t| t == "ReportBatchItemFailures");
            let by_reference = |field: &str, name_property: &str| {
                props
                    .get(field)
                    .and_then(reference)
                    .map(|id| names_of(&id, name_property))
                    .unwrap_or_default()
            };
            let event_type = definition["Type"].as_str().unwrap_or_default();
            // The kind SAM's event type delivers, from the one table of kinds.
            let Some(kind) = HookKind::ALL
                .iter()
                .copied()
                .find(|kind| kind.sam_event_types().contains(&event_type))
            else {
                continue;
            };
            let of_kind = Source {
                kind: Some(kind),
                ..Source::default()
            };
            let source = match event_type {
                "SQS" => Source {
                    names: by_reference("Queue", "QueueName"),
                    reports_item_failures,
                    ..of_kind
                },
                "DynamoDB" => Source {
                    names: by_reference("Stream", "TableName"),
                    reports_item_failures,
                    ..of_kind
                },
                "DocumentDB" => Source {
                    names: strings(props.get("CollectionName")).into_iter().collect(),
                    // DocumentDB has no partial batch response: a failure retries the batch.
                    reports_item_failures: true,
                    ..of_kind
                },
                "Kinesis" => Source {
                    names: by_reference("Stream", "Name"),
                    reports_item_failures,
                    ..of_kind
                },
                "SNS" => Source {
                    names: by_reference("Topic", "TopicName"),
                    ..of_kind
                },
                "MSK" | "SelfManagedKafka" => Source {
                    names: strings(props.get("Topics")).into_iter().collect(),
                    reports_item_failures,
                    ..of_kind
                },
                "MQ" => Source {
                    names: strings(props.get("Queues")).into_iter().collect(),
                    ..of_kind
                },
                "CloudWatchLogs" => Source {
                    names: props
                        .get("LogGroupName")
                        .and_then(|name| text(name).or_else(|| reference(name)))
                        .into_iter()
                        .collect(),
                    ..of_kind
                },
                "S3" => {
                    let rules = props["Filter"]["S3Key"]["Rules"].as_sequence();
                    let rule = |which: &str| {
                        rules.into_iter().flatten().find_map(|rule| {
                            rule["Name"]
                                .as_str()
                                .filter(|name| name.eq_ignore_ascii_case(which))
                                .and(rule["Value"].as_str().map(str::to_string))
                        })
                    };
                    Source {
                        names: by_reference("Bucket", "BucketName"),
                        s3_events: strings(props.get("Events")),
                        s3_prefix: rule("prefix"),
                        s3_suffix: rule("suffix"),
                        ..of_kind
                    }
                }
                "Schedule" => {
                    let rule = props.get("Name").and_then(text);
                    let mut names: BTreeSet<String> = named
                        .iter()
                        .filter(|(_, expression)| Some(expression) == rule.as_ref())
                        .map(|(name, _)| name.clone())
                        .collect();
                    names.extend(rule.filter(|r| !r.contains("${")));
                    Source { names, ..of_kind }
                }
                "CloudWatchEvent" | "EventBridgeRule" => Source {
                    names: strings(props["Pattern"].get("source"))
                        .into_iter()
                        .collect(),
                    detail_types: strings(props["Pattern"].get("detail-type")),
                    ..of_kind
                },
                _ => of_kind,
            };
            sources.push(Source { event, ..source });
        }
        let mut named_resources = std::collections::BTreeMap::new();
        for (id, resource) in resources {
            let Some(id) = id.as_str() else { continue };
            let (kind, name_property) = match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::S3::Bucket") => ("s3", "BucketName"),
                Some("AWS::SQS::Queue") => ("queues", "QueueName"),
                Some("AWS::SNS::Topic") => ("topics", "TopicName"),
                _ => continue,
            };
            named_resources
                .entry(kind)
                .or_insert_with(BTreeSet::new)
                .extend(names_of(id, name_property));
        }
        let kv_table = properties["Environment"]["Variables"]
            .get("KV_TABLE")
            .is_some();
        Ok(Template {
            file,
            sources,
            resources: named_resources,
            kv_table,
        })
    }

    /// Why each grant of `grants` names what this template does not define or map:
    /// `(field, reason)`. Secrets live outside templates and are not checked.
    pub fn check_grants(&self, grants: &crate::manifest::Grants) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let known = |kind: &str, name: &str| {
            self.resources
                .get(kind)
                .is_some_and(|names| names.contains(name))
        };
        let what = |kind: &str| match kind {
            "s3" => "bucket",
            "queues" => "queue",
            _ => "topic",
        };
        let mut check = |kind: &'static str, field: String, name: &str| {
            if !known(kind, name) {
                problems.push((
                    field,
                    format!(
                        "{}: the template defines no {} `{name}` (by its own name or a SOURCE_NAMES entry)",
                        self.file,
                        what(kind)
                    ),
                ));
            }
        };
        for (index, grant) in grants.s3.iter().enumerate() {
            check("s3", format!("grants.s3[{index}].bucket"), &grant.bucket);
        }
        for (index, queue) in grants.queues.iter().enumerate() {
            check("queues", format!("grants.queues[{index}]"), queue);
        }
        for (index, topic) in grants.topics.iter().enumerate() {
            check("topics", format!("grants.topics[{index}]"), topic);
        }
        if !grants.kv.is_empty() && !self.kv_table {
            problems.push((
                "grants.kv".to_string(),
                format!(
                    "{}: the bootstrap has no KV_TABLE, so key-value state has no table",
                    self.file
                ),
            ));
        }
        problems
    }

    /// Why `hook` cannot be delivered by this template, if it cannot.
    pub fn check(&self, hook: &Hook) -> Result<(), String> {
        let kind = hook.kind();
        if kind.sam_event_types().is_empty() {
            // SAM declares this kind's source elsewhere (an API's authorizer, a data source).
            return Ok(());
        }
        let of_kind: Vec<&Source> = self
            .sources
            .iter()
            .filter(|s| s.kind == Some(kind))
            .collect();
        if kind == HookKind::Cognito {
            return match of_kind.is_empty() {
                true => Err(format!(
                    "{} gives the bootstrap no Cognito user pool trigger",
                    self.file
                )),
                false => Ok(()),
            };
        }
        if kind == HookKind::Http {
            return match of_kind.is_empty() {
                true => Err(format!(
                    "{} gives the bootstrap no HTTP API, REST API or Function URL",
                    self.file
                )),
                false => Ok(()),
            };
        }
        let name = hook.resource().unwrap_or_default();
        let candidates: Vec<&&Source> = of_kind
            .iter()
            .filter(|source| source.names.contains(name))
            .collect();
        if candidates.is_empty() {
            let known: BTreeSet<&String> = of_kind.iter().flat_map(|s| &s.names).collect();
            let known: Vec<&str> = known.into_iter().map(String::as_str).collect();
            return Err(format!(
                "{} delivers no {kind} source named `{name}` to the bootstrap ({}); name its \
                 resource so, or map the name in SOURCE_NAMES",
                self.file,
                if known.is_empty() {
                    format!("it has no {kind} source")
                } else {
                    format!("its {kind} sources: {}", known.join(", "))
                }
            ));
        }
        if matches!(
            kind,
            HookKind::Sqs | HookKind::Database | HookKind::Stream | HookKind::Kafka
        ) && !candidates.iter().any(|s| s.reports_item_failures)
        {
            let event = &candidates[0].event;
            return Err(format!(
                "{}: event `{event}` lacks FunctionResponseTypes: [ReportBatchItemFailures], so \
                 Lambda would ignore which records failed",
                self.file
            ));
        }
        match &hook.spec {
            HookSpec::S3(s3) if !candidates.iter().any(|source| s3_delivers(source, s3)) => {
                Err(format!(
                    "{}: the S3 event on `{name}` lets none of this hook's events or keys through",
                    self.file
                ))
            }
            HookSpec::Event(event)
                if !candidates.iter().any(|source| {
                    source.detail_types.is_empty()
                        || event
                            .detail_type
                            .as_ref()
                            .is_none_or(|t| source.detail_types.contains(t))
                }) =>
            {
                Err(format!(
                    "{}: no rule for `{name}` lets detail type {:?} through",
                    self.file,
                    event.detail_type.as_deref().unwrap_or("(any)")
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Whether two event-name globs (`ObjectCreated:*`, `ObjectCreated:Put`) can both match one
/// event.
fn globs_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (
        a.strip_prefix("s3:").unwrap_or(a),
        b.strip_prefix("s3:").unwrap_or(b),
    );
    let matches = |glob: &str, text: &str| {
        Glob::new(glob)
            .map(|g| g.compile_matcher().is_match(text))
            .unwrap_or(false)
    };
    let stem = |glob: &str| glob.split('*').next().unwrap_or(glob).to_string();
    matches(a, b) || matches(b, a) || {
        let (x, y) = (stem(a), stem(b));
        x.starts_with(&y) || y.starts_with(&x)
    }
}

/// Whether an S3 event source lets some of `hook`'s notifications through.
fn s3_delivers(source: &Source, hook: &S3Hook) -> bool {
    let hook_events = hook.events.clone().unwrap_or_else(|| vec!["*".to_string()]);
    let events = source.s3_events.is_empty()
        || source
            .s3_events
            .iter()
            .any(|t| hook_events.iter().any(|h| globs_overlap(t, h)));
    let compatible =
        |theirs: &Option<String>, ours: &Option<String>, prefix: bool| match (theirs, ours) {
            (Some(theirs), Some(ours)) if prefix => {
                theirs.starts_with(ours.as_str()) || ours.starts_with(theirs.as_str())
            }
            (Some(theirs), Some(ours)) => {
                theirs.ends_with(ours.as_str()) || ours.ends_with(theirs.as_str())
            }
            _ => true,
        };
    events
        && compatible(&source.s3_prefix, &hook.prefix, true)
        && compatible(&source.s3_suffix, &hook.suffix, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn hooks(yaml: &str) -> Vec<Hook> {
        Manifest::parse(
            &format!("name: t\nruntime: wasm\nhooks:\n{yaml}"),
            "t",
            None,
        )
        .unwrap()
        .hooks
    }

    #[test]
    fn the_project_template_delivers_every_example_hook() {
        let template =
            Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap();
        for hook in hooks(
            "  - {type: http, path: \"/hello/{name}\"}\n\
             \x20 - {type: sqs, queue: jobs}\n\
             \x20 - {type: database, source: users, action: insert}\n\
             \x20 - {type: s3, bucket: uploads, prefix: incoming/, events: [\"ObjectCreated:*\"]}\n\
             \x20 - {type: schedule, rule: nightly}\n",
        ) {
            assert_eq!(template.check(&hook), Ok(()), "{hook:?}");
        }
        for (hook, reason) in hooks(
            "  - {type: sqs, queue: emails}\n\
             \x20 - {type: s3, bucket: uploads, events: [\"ObjectRemoved:*\"]}\n\
             \x20 - {type: sns, topic: alerts}\n",
        )
        .iter()
        .zip([
            "delivers no sqs source named `emails` to the bootstrap (its sqs sources: jobs)",
            "lets none of this hook's events or keys through",
            "delivers no sns source named `alerts` to the bootstrap (it has no sns source)",
        ]) {
            let error = template.check(hook).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
    }

    #[test]
    fn event_globs_overlap() {
        assert!(globs_overlap("s3:ObjectCreated:*", "ObjectCreated:Put"));
        assert!(globs_overlap("ObjectCreated:*", "*"));
        assert!(!globs_overlap("s3:ObjectCreated:*", "ObjectRemoved:*"));
    }
}
