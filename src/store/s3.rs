//! The S3 store: `s3://<bucket>/<prefix><name>/manifest.yaml`, on `aws-sdk-s3`.
//!
//! Versions are ETags. Listing walks every page of ListObjectsV2, so a store of any size is
//! discovered fully; a manifest is fetched with `If-None-Match` when its version is known, so an
//! unchanged one costs a 304 and no body.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;

use super::{FunctionStore, StoreError, Stored, Version};
use crate::manifest::MANIFEST_FILE;

/// Environment variables that point the SDK at a custom endpoint (S3-compatible servers).
const ENDPOINT_VARIABLES: &[&str] = &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"];

/// An S3 client on the SDK's standard configuration (region, credentials chain, endpoint
/// variables). Every read sits on an invocation's critical path, so a dead endpoint must fail
/// fast: short connect and attempt timeouts, and retries after 100 ms rather than the SDK's 1 s.
/// With a custom endpoint (`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), path-style addressing is
/// used.
pub async fn client_from_env() -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(100)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await;
    let custom_endpoint = ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(custom_endpoint)
        .build();
    Client::from_conf(config)
}

/// Functions under a prefix of an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty or ending in `/`.
    prefix: String,
}

impl S3Store {
    /// A store on the SDK's standard configuration; see [`client_from_env`].
    pub async fn from_env(bucket: &str, prefix: &str) -> S3Store {
        S3Store::new(client_from_env().await, bucket, prefix)
    }

    pub fn new(client: Client, bucket: &str, prefix: &str) -> S3Store {
        S3Store {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }
    }

    /// The key of `<name>/<path>` under the prefix.
    pub fn key(&self, name: &str, path: &str) -> String {
        format!("{}{name}/{path}", self.prefix)
    }

    /// Every object `<name>/<file>` under the prefix, with its ETag, walking every page.
    pub async fn objects(&self) -> Result<Vec<(String, String, Version)>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.unavailable(self.describe(), e))?;
            for object in page.contents() {
                let Some((name, file)) = object
                    .key()
                    .and_then(|key| key.strip_prefix(&self.prefix))
                    .and_then(|rest| rest.split_once('/'))
                else {
                    continue;
                };
                let etag = object.e_tag().unwrap_or_default().to_string();
                objects.push((name.to_string(), file.to_string(), Version(etag)));
            }
        }
        Ok(objects)
    }

    fn unavailable<E, R>(&self, location: String, error: SdkError<E, R>) -> StoreError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        StoreError::Unavailable {
            location,
            reason: DisplayErrorContext(&error).to_string(),
        }
    }
}

#[async_trait::async_trait]
impl FunctionStore for S3Store {
    async fn list(&self) -> Result<Vec<(String, Version)>, StoreError> {
        let mut functions: Vec<(String, Version)> = self
            .objects()
            .await?
            .into_iter()
            .filter(|(_, file, _)| file == MANIFEST_FILE)
            .map(|(name, _, version)| (name, version))
            .collect();
        functions.sort();
        Ok(functions)
    }

    async fn read(
        &self,
        name: &str,
        path: &str,
        known: Option<&Version>,
    ) -> Result<Option<Stored>, StoreError> {
        let location = self.locate(name, path);
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name, path));
        if let Some(known) = known {
            request = request.if_none_match(&known.0);
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(error) => {
                if error.raw_response().map(|r| r.status().as_u16()) == Some(304) {
                    return Ok(None);
                }
                if let SdkError::ServiceError(service) = &error
                    && matches!(service.err(), GetObjectError::NoSuchKey(_))
                {
                    return Err(StoreError::NotFound(location));
                }
                return Err(self.unavailable(location, error));
            }
        };
        let version = Version(output.e_tag().unwrap_or_default().to_string());
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|error| StoreError::Unavailable {
                location,
                reason: error.to_string(),
            })?
            .into_bytes();
        Ok(Some(Stored { bytes, version }))
    }

    fn locate(&self, name: &str, path: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(name, path))
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn published(&self) -> bool {
        true
    }
}
