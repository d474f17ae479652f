//! `wasm-lambda provision [DIR]`: on a local AWS-compatible server (named by `AWS_ENDPOINT_URL`),
//! creates what the functions under DIR name and do not find there: buckets, the key-value
//! table, queues, topics, and secrets (with placeholder values), so the local loop needs no AWS
//! account. It refuses to run without `AWS_ENDPOINT_URL`: real AWS resources come from the SAM
//! template.

use std::collections::BTreeSet;
use std::path::Path;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_s3::error::DisplayErrorContext;

use crate::cli::resources::{kv_table, needs, resource_names};

/// What provisioning did, one line per resource.
pub async fn provision(dir: &Path) -> Result<Vec<String>, Vec<String>> {
    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|endpoint| !endpoint.trim().is_empty())
    else {
        return Err(vec![
            "provision creates local stand-ins on an AWS-compatible server: set AWS_ENDPOINT_URL \
             (real AWS resources come from the SAM template)"
                .to_string(),
        ]);
    };
    let needs = needs(dir)?;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let names = resource_names();
    let resource = |name: &String| names.get(name).cloned().unwrap_or_else(|| name.clone());
    let mut done = Vec::new();
    let fail = |what: String| vec![format!("{what} (at {endpoint})")];

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let buckets: BTreeSet<String> = needs
        .s3
        .keys()
        .chain(&needs.hook_buckets)
        .map(resource)
        .collect();
    for bucket in buckets {
        let exists = s3.head_bucket().bucket(&bucket).send().await.is_ok();
        if !exists {
            s3.create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|e| fail(format!("bucket {bucket}: {}", DisplayErrorContext(&e))))?;
        }
        done.push(line("bucket", &bucket, exists));
    }

    if !needs.kv.is_empty() {
        let table = kv_table();
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let exists = dynamodb
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .is_ok();
        if !exists {
            create_kv_table(&dynamodb, &table)
                .await
                .map_err(|e| fail(format!("table {table}: {e}")))?;
        }
        done.push(line("key-value table", &table, exists));
    }

    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues: BTreeSet<String> = needs
        .queues
        .iter()
        .chain(&needs.hook_queues)
        .map(resource)
        .collect();
    for queue in queues {
        let exists = sqs.get_queue_url().queue_name(&queue).send().await.is_ok();
        if !exists {
            let mut create = sqs.create_queue().queue_name(&queue);
            if queue.ends_with(".fifo") {
                create =
                    create.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
            }
            create
                .send()
                .await
                .map_err(|e| fail(format!("queue {queue}: {}", DisplayErrorContext(&e))))?;
        }
        done.push(line("queue", &queue, exists));
    }

    let sns = aws_sdk_sns::Client::new(&config);
    let topics: BTreeSet<String> = needs
        .topics
        .iter()
        .chain(&needs.hook_topics)
        .map(resource)
        .filter(|topic| !topic.starts_with("arn:"))
        .collect();
    for topic in topics {
        // Creating a topic that exists returns it.
        sns.create_topic()
            .name(&topic)
            .send()
            .await
            .map_err(|e| fail(format!("topic {topic}: {}", DisplayErrorContext(&e))))?;
        done.push(line("topic", &topic, false));
    }

    let secrets_client = aws_sdk_secretsmanager::Client::new(&config);
    let ssm = aws_sdk_ssm::Client::new(&config);
    // A glob names no secret to create.
    for name in needs
        .secrets
        .iter()
        .filter(|name| !name.contains('*'))
        .map(resource)
    {
        let value = format!("local value of {name}");
        let exists = if name.starts_with('/') {
            let exists = ssm.get_parameter().name(&name).send().await.is_ok();
            if !exists {
                ssm.put_parameter()
                    .name(&name)
                    .value(&value)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .send()
                    .await
                    .map_err(|e| fail(format!("parameter {name}: {}", DisplayErrorContext(&e))))?;
            }
            exists
        } else {
            let exists = secrets_client
                .describe_secret()
                .secret_id(&name)
                .send()
                .await
                .is_ok();
            if !exists {
                secrets_client
                    .create_secret()
                    .name(&name)
                    .secret_string(&value)
                    .send()
                    .await
                    .map_err(|e| fail(format!("secret {name}: {}", DisplayErrorContext(&e))))?;
            }
            exists
        };
        done.push(line("secret", &name, exists));
    }
    Ok(done)
}

fn line(kind: &str, name: &str, existed: bool) -> String {
    if existed {
        format!("{kind} {name}: exists")
    } else {
        format!("{kind} {name}: created")
    }
}

/// The key-value table: `pk` (namespace) and `sk` (key), on demand, TTL on `expires`.
pub async fn create_kv_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), String> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(&e).to_string())?;
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires")
                .enabled(true)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| DisplayErrorContext(&e).to_string())?;
    Ok(())
}
