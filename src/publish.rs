//! Publishing functions to an S3 store.
//!
//! For each function: the manifest is validated, the module uploaded content-addressed as
//! `<name>/<sha256>.wasm` (skipped when already there), and only then the manifest, rewritten to
//! name that module and its digest. A reader therefore never sees a manifest pointing at a
//! missing or half-written module, and a module once published never changes. Each manifest made
//! current is also recorded as a version (see `history.rs`: versions, rollback, prune).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::artifacts::CompileTarget;
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::store::{
    FunctionStore, IndexedManifest, ManifestIndex, S3Store, StoreError, function_dirs,
    read_manifest,
};

/// Manifests read at once while writing the index.
const PARALLEL_INDEX_READS: usize = 16;

/// Where functions are published.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub bucket: String,
    /// Empty or ending in `/`.
    pub prefix: String,
    /// The engines whose artifacts the bucket refused in this run.
    pub refused: std::sync::Arc<std::sync::Mutex<BTreeSet<CompileTarget>>>,
}

/// A function found on disk, ready to publish.
#[derive(Debug)]
pub struct LocalFunction {
    pub dir: PathBuf,
    pub manifest: Manifest,
    text: String,
}

/// What publishing one function did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub name: String,
    pub digest: String,
    /// False when the module was already in the bucket.
    pub uploaded: bool,
    /// What became of its compiled artifacts, per engine.
    pub compiled: Vec<(CompileTarget, Artifact)>,
}

/// The compiled artifacts of one module for one engine, as `publish` left them. None of these
/// fails the publish: the module is published, and without its artifacts compiled where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// Compiled and uploaded now.
    Compiled,
    /// Already in the bucket.
    Present,
    /// The bucket did not take them, for this reason (a policy that lets only the bootstrap's
    /// role write compiled code, above all): not compiled for again in this run; environments
    /// compile the module, and share what they compile.
    Refused(String),
    /// Not made, for this reason.
    Failed(String),
}

/// Finds functions: each `DIR` is a function directory (it holds `manifest.yaml`) or a store
/// root whose subdirectories are. Returns every function, or every problem found.
pub fn discover(dirs: &[PathBuf]) -> Result<Vec<LocalFunction>, Vec<String>> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for dir in dirs {
        let candidates = match function_dirs(dir) {
            Ok(candidates) => candidates,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if candidates.is_empty() {
            problems.push(format!(
                "{}: no {MANIFEST_FILE} in it or its subdirectories",
                dir.display()
            ));
        }
        for function_dir in candidates {
            match load(&function_dir) {
                Ok(function) => found.push(function),
                Err(problem) => problems.push(problem),
            }
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

fn load(dir: &Path) -> Result<LocalFunction, String> {
    let (manifest, text) = read_manifest(dir)?;
    let file = dir.join(MANIFEST_FILE);
    let module = dir.join(&manifest.module);
    if !module.is_file() {
        return Err(format!(
            "{}: module: {} does not exist{}",
            file.display(),
            module.display(),
            if manifest.build.is_some() {
                " (build the function first)"
            } else {
                ""
            }
        ));
    }
    Ok(LocalFunction {
        dir: dir.to_path_buf(),
        manifest,
        text,
    })
}

fn s3_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    error: SdkError<E, R>,
) -> String {
    format!("{what}: {}", DisplayErrorContext(&error))
}

impl Target {
    /// The store `s3://<bucket>/<prefix>`; the prefix gets its trailing `/`.
    pub fn new(bucket: String, mut prefix: String) -> Target {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Target {
            bucket,
            prefix,
            refused: Default::default(),
        }
    }

    fn key(&self, name: &str, file: &str) -> String {
        format!("{}{name}/{file}", self.prefix)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Publishes one function: module first (unless present), then its compiled artifacts for
    /// each of `targets`, then its manifest.
    pub async fn publish(
        &self,
        client: &Client,
        function: &LocalFunction,
        targets: &[CompileTarget],
    ) -> Result<Published, String> {
        let name = &function.manifest.name;
        let module_path = function.dir.join(&function.manifest.module);
        let module = Bytes::from(
            tokio::fs::read(&module_path)
                .await
                .map_err(|e| format!("{}: {e}", module_path.display()))?,
        );
        if !module.starts_with(b"\0asm") {
            return Err(format!(
                "{}: is not a WebAssembly module",
                module_path.display()
            ));
        }
        let digest = hex::encode(Sha256::digest(&module));
        if let Some(expected) = &function.manifest.sha256
            && *expected != digest
        {
            return Err(format!(
                "{}: module hashes to {digest}, but the manifest's sha256 is {expected}",
                function.dir.join(MANIFEST_FILE).display()
            ));
        }

        let module_key = self.key(name, &format!("{digest}.wasm"));
        // A module already there is rewritten onto itself, so that a prune running meanwhile
        // (which keeps what was written within its window) keeps it; else it is uploaded.
        let present = self.refresh_module(client, &module_key).await?;
        if !present {
            client
                .put_object()
                .bucket(&self.bucket)
                .key(&module_key)
                .content_type("application/wasm")
                .body(ByteStream::from(module.clone()))
                .send()
                .await
                .map_err(|e| s3_error(&self.url(&module_key), e))?;
        }
        let fuel = function.manifest.fuel.is_some();
        let compiled = self
            .publish_artifacts(client, &module, &digest, fuel, targets)
            .await;

        let manifest = rewrite(&function.text, &digest)
            .map_err(|e| format!("{}: {e}", function.dir.join(MANIFEST_FILE).display()))?;
        // Recorded first, so the manifest that becomes current is always among the versions.
        self.record_version(client, name, &manifest).await?;
        let manifest_key = self.key(name, MANIFEST_FILE);
        client
            .put_object()
            .bucket(&self.bucket)
            .key(&manifest_key)
            .content_type("application/yaml")
            .body(ByteStream::from(manifest.into_bytes()))
            .send()
            .await
            .map_err(|e| s3_error(&self.url(&manifest_key), e))?;
        Ok(Published {
            name: name.clone(),
            digest,
            uploaded: !present,
            compiled,
        })
    }

    /// Uploads the compiled artifacts of `module` for each of `targets` not in the bucket yet,
    /// compiled here, so that a cold environment of that engine loads instead of compiling.
    /// Artifacts already there are rewritten onto themselves (a prune meanwhile keeps them). A
    /// bucket that refuses them is not a failure: the module is published, and compiled where
    /// it runs.
    async fn publish_artifacts(
        &self,
        client: &Client,
        module: &Bytes,
        digest: &str,
        fuel: bool,
        targets: &[CompileTarget],
    ) -> Vec<(CompileTarget, Artifact)> {
        let store = S3Store::new(client.clone(), &self.bucket, &self.prefix);
        let mut engines = BTreeSet::new();
        let mut compiled = Vec::new();
        for &target in targets {
            let key = target.key(digest, fuel);
            // On a Graviton, `host` is the arm64 engine itself.
            if !engines.insert(key.engine.clone()) {
                continue;
            }
            // Once the bucket refused one, it is not compiled for again in this run.
            if self.refused.lock().expect("refused lock").contains(&target) {
                compiled.push((target, Artifact::Refused("refused earlier".to_string())));
                continue;
            }
            let object = store.artifact_key(&key.to_string());
            let head = client
                .head_object()
                .bucket(&self.bucket)
                .key(&object)
                .send()
                .await;
            // Not found, or not ours to know (a 403 without `s3:ListBucket`): the upload says.
            if head.is_ok() {
                // Best effort: a bucket that lets only the bootstrap write there keeps it anyway.
                let _ = self
                    .refresh(client, &object, "application/octet-stream")
                    .await;
                compiled.push((target, Artifact::Present));
                continue;
            }
            let bytes = module.clone();
            let bundle =
                match tokio::task::spawn_blocking(move || target.bundle(&bytes, fuel)).await {
                    Ok(Ok(bundle)) => bundle,
                    Ok(Err(error)) => {
                        compiled.push((target, Artifact::Failed(error)));
                        continue;
                    }
                    Err(panic) => {
                        compiled.push((target, Artifact::Failed(format!("panicked: {panic}"))));
                        continue;
                    }
                };
            let artifact = match store.put_artifact_bundle(&key.to_string(), bundle).await {
                Ok(()) => Artifact::Compiled,
                // As the bootstrap does: a store that refused one is not asked again.
                Err(error) => {
                    self.refused.lock().expect("refused lock").insert(target);
                    Artifact::Refused(error.to_string())
                }
            };
            compiled.push((target, artifact));
        }
        compiled
    }

    /// Rewrites the manifest index (see [`crate::store::MANIFEST_INDEX`]) from what the store holds now:
    /// entries of the old index still current are kept, every other manifest is read. Returns
    /// how many manifests it lists.
    pub async fn write_index(&self, client: &Client) -> Result<usize, String> {
        let store = S3Store::new(client.clone(), &self.bucket, &self.prefix);
        let objects = store.objects().await.map_err(|e| e.to_string())?;
        let old = store.read_index().await.unwrap_or_default();
        let store = &store;
        let old = &old;
        let entries: Vec<Result<Option<(String, IndexedManifest)>, String>> =
            futures::stream::iter(
                objects
                    .into_iter()
                    .filter(|(_, file, _)| file == MANIFEST_FILE),
            )
            .map(|(name, _, version)| async move {
                if let Some(entry) = old.manifests.get(&name)
                    && entry.etag == version.0
                {
                    return Ok(Some((name, entry.clone())));
                }
                match store.read(&name, MANIFEST_FILE, None).await {
                    Ok(stored) => {
                        let stored =
                            stored.expect("a read without a known version returns content");
                        let entry = IndexedManifest {
                            etag: stored.version.0,
                            text: String::from_utf8_lossy(&stored.bytes).into_owned(),
                        };
                        Ok(Some((name, entry)))
                    }
                    // Deleted meanwhile: not in the index.
                    Err(StoreError::NotFound(_)) => Ok(None),
                    Err(error) => Err(error.to_string()),
                }
            })
            .buffer_unordered(PARALLEL_INDEX_READS)
            .collect()
            .await;
        let mut index = ManifestIndex::default();
        for entry in entries {
            if let Some((name, manifest)) = entry? {
                index.manifests.insert(name, manifest);
            }
        }
        store.write_index(&index).await.map_err(|e| e.to_string())?;
        Ok(index.manifests.len())
    }
}

/// The manifest text with `module` and `sha256` naming the published module.
fn rewrite(text: &str, digest: &str) -> Result<String, String> {
    let mut document: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mapping = document
        .as_mapping_mut()
        .ok_or_else(|| "the manifest is not a mapping".to_string())?;
    mapping.insert("module".into(), format!("{digest}.wasm").into());
    mapping.insert("sha256".into(), digest.into());
    serde_yaml::to_string(&document).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rewritten_manifest_names_the_published_module() {
        let text = "name: a\nruntime: wasm\nbuild: {command: cargo, output: target/a.wasm}\n";
        let rewritten = rewrite(text, &"ab".repeat(32)).unwrap();
        let manifest = Manifest::parse(&rewritten, "a", Some("a")).unwrap();
        assert_eq!(manifest.module, format!("{}.wasm", "ab".repeat(32)));
        assert_eq!(manifest.sha256, Some("ab".repeat(32)));
        assert!(manifest.build.is_some(), "the rest of the manifest is kept");
    }
}
