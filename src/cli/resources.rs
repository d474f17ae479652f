//! What a store's functions reach on AWS, by logical name: their grants and the sources their
//! hooks name. `wasm-lambda policy` prints the IAM statements the grants need;
//! `wasm-lambda provision` creates local stand-ins of all of it on an AWS-compatible server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::config::DEFAULT_KV_TABLE;
use crate::manifest::Manifest;
use crate::store::{function_dirs, read_manifest};
use crate::trigger::HookKind;

/// Everything the functions of a store name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Granted S3 access: bucket -> (prefix, access).
    pub s3: BTreeMap<String, BTreeSet<(String, AccessName)>>,
    pub kv: BTreeSet<String>,
    pub queues: BTreeSet<String>,
    pub topics: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    /// Sources hooks name (they deliver events; the functions need no access to them).
    pub hook_buckets: BTreeSet<String>,
    pub hook_queues: BTreeSet<String>,
    pub hook_topics: BTreeSet<String>,
    pub hook_tables: BTreeSet<String>,
}

/// [`Access`], ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccessName {
    Read,
    Write,
}

impl Needs {
    fn add(&mut self, manifest: &Manifest) {
        let grants = &manifest.grants;
        for grant in &grants.s3 {
            let entry = self.s3.entry(grant.bucket.clone()).or_default();
            if grant.access.reads() {
                entry.insert((grant.prefix.clone(), AccessName::Read));
            }
            if grant.access.writes() {
                entry.insert((grant.prefix.clone(), AccessName::Write));
            }
        }
        // A function's namespaces are its own: keyed `<function>/<namespace>` in the table.
        self.kv
            .extend(grants.kv.iter().map(|ns| format!("{}/{ns}", manifest.name)));
        self.queues.extend(grants.queues.iter().cloned());
        self.topics.extend(grants.topics.iter().cloned());
        self.secrets.extend(grants.secrets.iter().cloned());
        for hook in &manifest.hooks {
            let Some(resource) = hook.resource() else {
                continue;
            };
            let names = match hook.kind() {
                HookKind::S3 => &mut self.hook_buckets,
                HookKind::Sqs => &mut self.hook_queues,
                HookKind::Sns => &mut self.hook_topics,
                HookKind::Database => &mut self.hook_tables,
                _ => continue,
            };
            names.insert(resource.to_string());
        }
    }
}

/// What the functions under `dir` name, or every manifest problem.
pub fn needs(dir: &Path) -> Result<Needs, Vec<String>> {
    let dirs = function_dirs(dir).map_err(|problem| vec![problem])?;
    let mut needs = Needs::default();
    let mut problems = Vec::new();
    for function in dirs {
        match read_manifest(&function) {
            Ok((manifest, _)) => needs.add(&manifest),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(needs)
    } else {
        Err(problems)
    }
}

/// `SOURCE_NAMES` (`name=resource,...`), as logical name -> deployed resource.
pub fn resource_names() -> BTreeMap<String, String> {
    std::env::var("SOURCE_NAMES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, resource)| (name.trim().to_string(), resource.trim().to_string()))
        .collect()
}

/// The IAM policy document the bootstrap's role needs for these grants: least privilege, by
/// resource and, for key-value state, by namespace (DynamoDB's `LeadingKeys`).
pub fn policy(needs: &Needs, names: &BTreeMap<String, String>, kv_table: &str) -> Value {
    let resource = |name: &String| names.get(name).cloned().unwrap_or_else(|| name.clone());
    let mut statements = Vec::new();
    for (bucket, grants) in &needs.s3 {
        let bucket = resource(bucket);
        let objects = |access: AccessName| -> Vec<String> {
            grants
                .iter()
                .filter(|(_, a)| *a == access)
                .map(|(prefix, _)| format!("arn:aws:s3:::{bucket}/{prefix}*"))
                .collect()
        };
        let read = objects(AccessName::Read);
        if !read.is_empty() {
            statements.push(json!({
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": read,
            }));
            let prefixes: Vec<String> = grants
                .iter()
                .filter(|(_, a)| *a == AccessName::Read)
                .map(|(prefix, _)| format!("{prefix}*"))
                .collect();
            statements.push(json!({
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}")],
                "Condition": {"StringLike": {"s3:prefix": prefixes}},
            }));
        }
        let write = objects(AccessName::Write);
        if !write.is_empty() {
            statements.push(json!({
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": write,
            }));
        }
    }
    if !needs.kv.is_empty() {
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            "Resource": [format!("arn:aws:dynamodb:*:*:table/{kv_table}")],
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": needs.kv}},
        }));
    }
    if !needs.queues.is_empty() {
        let queues: Vec<String> = needs
            .queues
            .iter()
            .map(|queue| format!("arn:aws:sqs:*:*:{}", resource(queue)))
            .collect();
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
            "Resource": queues,
        }));
    }
    if !needs.topics.is_empty() {
        let topics: Vec<String> = needs
            .topics
            .iter()
            .map(|topic| {
                let topic = resource(topic);
                if topic.starts_with("arn:") {
                    topic
                } else {
                    format!("arn:aws:sns:*:*:{topic}")
                }
            })
            .collect();
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": topics,
        }));
        // A topic named without its ARN is found by listing (no resource-level permission).
        if needs
            .topics
            .iter()
            .any(|topic| !resource(topic).starts_with("arn:"))
        {
            statements.push(json!({
                "Effect": "Allow",
                "Action": ["sns:ListTopics"],
                "Resource": ["*"],
            }));
        }
    }
    let (parameters, secrets): (Vec<String>, Vec<String>) = needs
        .secrets
        .iter()
        .map(&resource)
        .partition(|name| name.starts_with('/'));
    if !secrets.is_empty() {
        // A secret's ARN ends in `-` and six random characters.
        let arns: Vec<String> = secrets
            .iter()
            .map(|name| format!("arn:aws:secretsmanager:*:*:secret:{name}-??????"))
            .collect();
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": arns,
        }));
    }
    if !parameters.is_empty() {
        let arns: Vec<String> = parameters
            .iter()
            .map(|name| format!("arn:aws:ssm:*:*:parameter{name}"))
            .collect();
        statements.push(json!({
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": arns,
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The key-value table's name: `KV_TABLE`, else the default.
pub fn kv_table() -> String {
    std::env::var("KV_TABLE")
        .ok()
        .filter(|table| !table.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_KV_TABLE.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_grants() {
        let manifest = Manifest::parse(
            "name: a\nruntime: wasm\ngrants:\n  s3: [{bucket: uploads, prefix: in/, access: read-write}]\n  kv: [carts]\n  queues: [jobs]\n  topics: [alerts]\n  secrets: [key, \"/app/*\"]\nhooks: [{type: sqs, queue: work}]\n",
            "f",
            None,
        )
        .unwrap();
        let mut needs = Needs::default();
        needs.add(&manifest);
        assert!(needs.hook_queues.contains("work"));
        let names = BTreeMap::from([("uploads".to_string(), "stack-uploads".to_string())]);
        let policy = policy(&needs, &names, "kv");
        let text = policy.to_string();
        for expected in [
            "arn:aws:s3:::stack-uploads/in/*",
            "\"s3:prefix\":[\"in/*\"]",
            "s3:PutObject",
            "table/kv",
            "\"dynamodb:LeadingKeys\":[\"a/carts\"]",
            "arn:aws:sqs:*:*:jobs",
            "arn:aws:sns:*:*:alerts",
            "secret:key-??????",
            "parameter/app/*",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        assert!(!text.contains("work"), "hook sources need no grant: {text}");
    }
}
