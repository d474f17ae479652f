//! Database change streams: DynamoDB Streams (`Records` of `eventSource: aws:dynamodb`) and
//! DocumentDB change streams (`eventSource: aws:docdb`, `events`). Both run in order. DynamoDB
//! names failed records in `batchItemFailures` by sequence number; DocumentDB has no partial
//! batch response, so a failed event fails the invocation and Lambda retries the batch.

use aws_lambda_events::dynamodb;
use base64::Engine as _;
use serde_dynamo::AttributeValue;
use serde_json::{Value, json};

use super::batch::{self, Batch, Record, Source, arn_resource};
use super::hook::{Checks, Compiled, HookProblem, HookSchema, OneOrMany, Pattern, Rules};
use super::kind::HookKind;
use super::parse;
use crate::error::Error;

/// `{type: database, source: users, action: insert}`
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseHook {
    /// The DynamoDB table or the DocumentDB collection.
    pub source: String,
    /// `insert`, `update`, `delete` or a list; default all three.
    pub action: Option<OneOrMany>,
    pub entrypoint: Option<String>,
}

const ACTIONS: &[&str] = &["insert", "update", "delete"];

impl HookSchema for DatabaseHook {
    fn entrypoint(&self) -> Option<&str> {
        self.entrypoint.as_deref()
    }

    fn compile(&self, _rules: Rules) -> Result<Compiled, Vec<HookProblem>> {
        let mut checks = Checks::default();
        checks.not_empty("source", &self.source);
        checks.entrypoint(self.entrypoint.as_deref());
        let actions = self.action.as_ref().map(OneOrMany::to_vec);
        for action in actions.iter().flatten() {
            if !ACTIONS.contains(&action.as_str()) {
                checks.add(
                    "action",
                    format!("`{action}` is not one of insert, update, delete"),
                );
            }
        }
        let compiled = Compiled::resource(&self.source).with("action", actions.map(Pattern::AnyOf));
        checks.done(compiled)
    }

    fn describe(&self) -> String {
        let actions = self
            .action
            .as_ref()
            .map(|a| a.to_vec().join(","))
            .unwrap_or_else(|| "any action".to_string());
        format!("table {}, {actions}", self.source)
    }
}

/// A DynamoDB stream's batch.
pub(super) fn recognize_dynamodb(event: &Value, raws: &[Value]) -> Result<Batch, Error> {
    let parsed: dynamodb::Event = parse(event, "DynamoDB stream event")?;
    let mut records = Vec::with_capacity(raws.len());
    for (record, raw) in parsed.records.into_iter().zip(raws) {
        let action = match record.event_name.as_str() {
            "INSERT" => "insert",
            "MODIFY" => "update",
            "REMOVE" => "delete",
            other => {
                return Err(Error::InvalidRequest(format!(
                    "DynamoDB stream record {}: eventName `{other}` is not INSERT, MODIFY or REMOVE",
                    record.event_id
                )));
            }
        };
        let table = record
            .event_source_arn
            .as_deref()
            .and_then(|arn| arn_resource(arn, "table"))
            .map(str::to_string)
            .or(record.table_name)
            .unwrap_or_default();
        let change = record.change;
        // An image the record does not carry (old on insert, new on delete) is null, not {}.
        let image = |field: &str, item: serde_dynamo::Item| match raw["dynamodb"].get(field) {
            Some(_) => dynamodb_to_json(item),
            None => Value::Null,
        };
        let fields = json!({
            "source": table,
            "action": action,
            "keys": dynamodb_to_json(change.keys),
            "new": image("NewImage", change.new_image),
            "old": image("OldImage", change.old_image),
            "event_id": record.event_id,
            "sequence_number": change.sequence_number,
        });
        let label = format!("database `{table}` {action}");
        let source = Source::new(HookKind::Database, table, label).with("action", action);
        records.push(Record::new(source, change.sequence_number, fields, raw));
    }
    Ok(Batch::new(records, batch::item_failures, true))
}

/// A DocumentDB change stream's batch (`{"eventSource": "aws:docdb", "events": [...]}`), or
/// `None` if `event` is not one.
pub(super) fn recognize_documentdb(event: &Value) -> Option<Result<Batch, Error>> {
    if event.get("eventSource").and_then(Value::as_str) != Some("aws:docdb") {
        return None;
    }
    let Some(events) = event.get("events").and_then(Value::as_array) else {
        return Some(Err(Error::InvalidRequest(
            "DocumentDB change stream event: `events` must be an array".to_string(),
        )));
    };
    let mut records = Vec::with_capacity(events.len());
    for (index, raw) in events.iter().enumerate() {
        let change = &raw["event"];
        let Some(operation) = change["operationType"].as_str() else {
            return Some(Err(Error::InvalidRequest(format!(
                "DocumentDB change stream event: events[{index}] lacks `event.operationType`"
            ))));
        };
        // A change names its collection; `dropDatabase` and `invalidate` may name only the
        // database, or nothing.
        let collection = change["ns"]["coll"]
            .as_str()
            .or(change["ns"]["db"].as_str())
            .unwrap_or_default();
        let action = match operation {
            "insert" => "insert",
            "update" | "replace" => "update",
            "delete" => "delete",
            other => other,
        };
        let fields = json!({
            "source": collection,
            "database": change["ns"]["db"],
            "action": action,
            "operation": operation,
            "keys": change["documentKey"],
            "new": change.get("fullDocument").cloned().unwrap_or(Value::Null),
            "old": change.get("fullDocumentBeforeChange").cloned().unwrap_or(Value::Null),
            "update": change.get("updateDescription").cloned().unwrap_or(Value::Null),
            "event_id": change["_id"]["_data"],
        });
        let label = format!("database `{collection}` {action}");
        let source = Source::new(HookKind::Database, collection, label).with("action", action);
        let id = change["_id"]["_data"].as_str().map(str::to_string);
        let mut record = Record::new(source, id, fields, raw);
        // Not a change of a document (drop, rename, dropDatabase, invalidate): done when no
        // hook takes it, so the stream goes on.
        record.optional = !ACTIONS.contains(&action);
        records.push(record);
    }
    Some(Ok(Batch::new(records, batch::fail_invocation, true)))
}

/// DynamoDB attribute values as plain JSON: `{"id": {"S": "1"}, "n": {"N": "2"}}` becomes
/// `{"id": "1", "n": 2}`. Sets become arrays, binary becomes base64 text.
pub fn dynamodb_to_json(item: serde_dynamo::Item) -> Value {
    Value::Object(
        item.into_inner()
            .into_iter()
            .map(|(name, value)| (name, attribute_to_json(value)))
            .collect(),
    )
}

fn attribute_to_json(value: AttributeValue) -> Value {
    let base64 =
        |bytes: Vec<u8>| Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
    // DynamoDB numbers are decimal text; keep them numbers where JSON can hold them.
    let number = |text: String| {
        serde_json::from_str::<serde_json::Number>(&text)
            .map(Value::Number)
            .unwrap_or(Value::String(text))
    };
    match value {
        AttributeValue::S(text) => Value::String(text),
        AttributeValue::N(text) => number(text),
        AttributeValue::Bool(flag) => Value::Bool(flag),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(bytes) => base64(bytes),
        AttributeValue::M(map) => Value::Object(
            map.into_iter()
                .map(|(name, value)| (name, attribute_to_json(value)))
                .collect(),
        ),
        AttributeValue::L(list) => Value::Array(list.into_iter().map(attribute_to_json).collect()),
        AttributeValue::Ss(set) => Value::Array(set.into_iter().map(Value::String).collect()),
        AttributeValue::Ns(set) => Value::Array(set.into_iter().map(number).collect()),
        AttributeValue::Bs(set) => Value::Array(set.into_iter().map(base64).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_attribute_values_become_plain_json() {
        let item: serde_dynamo::Item = serde_json::from_value(json!({
            "id": {"S": "u1"}, "age": {"N": "42"}, "ratio": {"N": "0.5"},
            "admin": {"BOOL": false}, "gone": {"NULL": true}, "blob": {"B": "aGk="},
            "tags": {"SS": ["a", "b"]}, "scores": {"NS": ["1", "2"]},
            "profile": {"M": {"name": {"S": "Ada"}, "langs": {"L": [{"S": "en"}, {"N": "7"}]}}}
        }))
        .unwrap();
        assert_eq!(
            dynamodb_to_json(item),
            json!({
                "id": "u1", "age": 42, "ratio": 0.5, "admin": false, "gone": null, "blob": "aGk=",
                "tags": ["a", "b"], "scores": [1, 2],
                "profile": {"name": "Ada", "langs": ["en", 7]}
            })
        );
    }
}
