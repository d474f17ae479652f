//! The S3 store: `s3://<bucket>/<prefix><name>/manifest.yaml`, on `aws-sdk-s3`.
//!
//! Versions are ETags. Listing walks every page of ListObjectsV2, so a store of any size is
//! discovered fully; a manifest is fetched with `If-None-Match` when its version is known, so an
//! unchanged one costs a 304 and no body.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use tracing::{debug, warn};

use super::{FunctionStore, StoreError, Stored, Version};
use crate::manifest::MANIFEST_FILE;

/// Where compiled artifacts live under the prefix; not a function name (names cannot start
/// with `_`).
pub const ARTIFACTS_DIR: &str = "_compiled";

/// The manifest index under the prefix: every manifest's text and ETag in one object, written
/// by `wasm-lambda publish`, so a cold environment reads one object instead of one per function.
pub const MANIFEST_INDEX: &str = "_manifests.json";

/// The manifest index: function name -> its manifest's ETag and text. Only a hint: an entry is
/// used only while the listing shows the same ETag, so a stale or partial index costs reads,
/// never a wrong manifest.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ManifestIndex {
    pub manifests: std::collections::BTreeMap<String, IndexedManifest>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IndexedManifest {
    pub etag: String,
    pub text: String,
}

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
    /// The compiled-artifact bundles (`<engine>/<module>`) of the last listing, and when it was
    /// made; bundles this process wrote since are added.
    bundles: Arc<Mutex<Option<ListedBundles>>>,
}

/// A read that failed, and whether S3 answered it (with an error status) or gave no answer at
/// all (no connection, none in time, the body cut off).
struct GetFailed {
    error: StoreError,
    answered: bool,
}

/// When a listing was made, and the compiled-artifact bundles it showed.
type ListedBundles = (Instant, HashSet<String>);

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
            bundles: Arc::default(),
        }
    }

    /// The key of `<name>/<path>` under the prefix.
    pub fn key(&self, name: &str, path: &str) -> String {
        format!("{}{name}/{path}", self.prefix)
    }

    /// The object key of the compiled-artifact bundle `key` (`<engine>/<module digest>`).
    pub fn artifact_key(&self, key: &str) -> String {
        format!("{}{ARTIFACTS_DIR}/{key}", self.prefix)
    }

    /// The manifest index, if there is a readable one.
    pub async fn read_index(&self) -> Option<ManifestIndex> {
        let key = format!("{}{MANIFEST_INDEX}", self.prefix);
        match self.read_key(&key, None).await {
            Ok(Some(stored)) => match serde_json::from_slice(&stored.bytes) {
                Ok(index) => Some(index),
                Err(error) => {
                    warn!(%error, "the manifest index does not parse; manifests are read one by one");
                    None
                }
            },
            Ok(None) | Err(StoreError::NotFound(_)) => None,
            Err(error) => {
                debug!(%error, "no manifest index");
                None
            }
        }
    }

    /// Writes the manifest index.
    pub async fn write_index(&self, index: &ManifestIndex) -> Result<(), StoreError> {
        let key = format!("{}{MANIFEST_INDEX}", self.prefix);
        let body = serde_json::to_vec(index).expect("the index serializes");
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.unavailable(format!("s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// Reads object `key`, or returns `None` when its version is still `known`.
    pub async fn read_key(
        &self,
        key: &str,
        known: Option<&Version>,
    ) -> Result<Option<Stored>, StoreError> {
        self.get(key, known).await.map_err(|failed| failed.error)
    }

    /// Like [`S3Store::read_key`], saying too whether S3 answered when it failed.
    async fn get(&self, key: &str, known: Option<&Version>) -> Result<Option<Stored>, GetFailed> {
        let location = format!("s3://{}/{key}", self.bucket);
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
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
                    return Err(GetFailed {
                        error: StoreError::NotFound(location),
                        answered: true,
                    });
                }
                let answered = error.raw_response().is_some();
                return Err(GetFailed {
                    error: self.unavailable(location, error),
                    answered,
                });
            }
        };
        let version = Version(output.e_tag().unwrap_or_default().to_string());
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|error| GetFailed {
                error: StoreError::Unavailable {
                    location,
                    reason: error.to_string(),
                },
                answered: false,
            })?
            .into_bytes();
        Ok(Some(Stored { bytes, version }))
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
        let listed_at = Instant::now();
        let mut functions = Vec::new();
        let mut bundles = HashSet::new();
        for (name, file, version) in self.objects().await? {
            if name == ARTIFACTS_DIR {
                bundles.insert(file);
            } else if file == MANIFEST_FILE {
                functions.push((name, version));
            }
        }
        *self.bundles.lock().expect("bundles lock") = Some((listed_at, bundles));
        functions.sort();
        Ok(functions)
    }

    async fn read(
        &self,
        name: &str,
        path: &str,
        known: Option<&Version>,
    ) -> Result<Option<Stored>, StoreError> {
        self.read_key(&self.key(name, path), known).await
    }

    async fn manifest_index(&self) -> Option<Vec<(String, Stored)>> {
        let index = self.read_index().await?;
        Some(
            index
                .manifests
                .into_iter()
                .map(|(name, entry)| {
                    let stored = Stored {
                        bytes: Bytes::from(entry.text),
                        version: Version(entry.etag),
                    };
                    (name, stored)
                })
                .collect(),
        )
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

    async fn artifact_bundle(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.get(&self.artifact_key(key), None).await {
            Ok(stored) => Ok(stored.map(|s| s.bytes)),
            // S3 answered: no bundle, or none this role may read (a policy on `_compiled/`).
            Err(GetFailed {
                error,
                answered: true,
            }) => {
                if !matches!(error, StoreError::NotFound(_)) {
                    debug!(%error, "compiled artifacts not readable");
                }
                Ok(None)
            }
            Err(GetFailed { error, .. }) => Err(error),
        }
    }

    fn artifact_listed(&self, key: &str, within: Duration) -> Option<bool> {
        let bundles = self.bundles.lock().expect("bundles lock");
        let (listed_at, bundles) = bundles.as_ref()?;
        (listed_at.elapsed() < within).then(|| bundles.contains(key))
    }

    fn keeps_artifacts(&self) -> bool {
        true
    }

    async fn put_artifact_bundle(&self, key: &str, bundle: Bytes) -> Result<(), StoreError> {
        let object = self.artifact_key(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&object)
            .body(ByteStream::from(bundle))
            .send()
            .await
            .map_err(|e| self.unavailable(format!("s3://{}/{object}", self.bucket), e))?;
        if let Some((_, bundles)) = self.bundles.lock().expect("bundles lock").as_mut() {
            bundles.insert(key.to_string());
        }
        Ok(())
    }
}
