//! What was published, and when: each function's versions, rollback, and pruning that never
//! takes what an environment may still need.
//!
//! Every publish (and rollback) records the manifest it makes current as
//! `_versions/<name>/<id>.yaml` under the prefix, before the manifest itself; `<id>` is the UTC
//! time of the publish and the start of the manifest's digest
//! (`2026-12-01T11:45:12.345Z-3b7f0c1a`). Versions are ordered by when S3 stored their record
//! (one clock for every publisher), and the current one is the one whose text the function's
//! manifest holds now. A version was current from its record until the next one's. Its module
//! is the content-addressed `<name>/<sha256>.wasm` it names, so rolling back is writing an old
//! manifest again.
//!
//! Pruning keeps, for each function, its current manifest's module, the version before it (the
//! runtime's last good version, should the current one fail to load), and every version that
//! was current within the keep window (by default `REVALIDATE_AFTER`: an environment trusts a
//! manifest it read for that long, and may still fetch its module meanwhile). It deletes the
//! other versions' records, the content-addressed modules no kept version names, and those
//! modules' compiled bundles (`_compiled/<engine>/<sha256>`, which carry the module too), each
//! bundle before its module. It never deletes a module written within the window (a publish
//! running meanwhile uploads or refreshes its module before naming it; each candidate is
//! looked at again right before it goes), nor a module no record names while the manifest that
//! replaced it is younger than the window (published before records were kept), nor anything of
//! a function whose manifest is gone or does not parse.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

use crate::manifest::{MANIFEST_FILE, Manifest, Rules};
use crate::publish::Target;
use crate::store::ARTIFACTS_DIR;

/// Where the versions are recorded, under the prefix.
pub const VERSIONS_DIR: &str = "_versions";

/// One recorded version of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// `2026-12-01T11:45:12.345Z-3b7f0c1a`: when it was published, and its manifest's digest.
    pub id: String,
    /// When S3 stored its record (else the time in its id).
    pub published: SystemTime,
    /// Its module's file (`<sha256>.wasm`), or `None` when its manifest no longer parses.
    pub module: Option<String>,
    /// Its manifest, as published.
    pub text: String,
    /// Whether the function's manifest is this version's now.
    pub current: bool,
}

impl Version {
    /// The module's digest, shortened for people.
    pub fn short_module(&self) -> &str {
        let module = self.module.as_deref().unwrap_or("?");
        let digest = module.strip_suffix(".wasm").unwrap_or(module);
        &digest[..digest.len().min(12)]
    }
}

/// An object under the prefix, with when it was last written.
#[derive(Debug, Clone)]
struct Object {
    key: String,
    modified: Option<SystemTime>,
}

fn s3_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    error: aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    format!("{what}: {}", DisplayErrorContext(&error))
}

/// A module file name as `publish` writes them: `<64 hex digits>.wasm`. Only those are pruned.
fn is_content_addressed(file: &str) -> bool {
    file.strip_suffix(".wasm").is_some_and(|digest| {
        digest.len() == 64
            && digest
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The id of a version with manifest `text` published at `time`.
pub fn version_id(time: SystemTime, text: &str) -> String {
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
    format!(
        "{}-{}",
        humantime::format_rfc3339_millis(time),
        &digest[..8]
    )
}

/// When the version `id` says it was published.
fn id_time(id: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(id.get(..24)?).ok()
}

impl Target {
    fn version_key(&self, name: &str, id: &str) -> String {
        format!("{}{VERSIONS_DIR}/{name}/{id}.yaml", self.prefix)
    }

    /// Records `text` (a manifest about to be made current) as a version of `name`.
    pub async fn record_version(
        &self,
        client: &Client,
        name: &str,
        text: &str,
    ) -> Result<String, String> {
        let id = version_id(SystemTime::now(), text);
        let key = self.version_key(name, &id);
        client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/yaml")
            .body(ByteStream::from(text.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| s3_error(&format!("s3://{}/{key}", self.bucket), e))?;
        Ok(id)
    }

    /// Every object under `prefix` (relative to the target's prefix).
    async fn list(&self, client: &Client, under: &str) -> Result<Vec<Object>, String> {
        let prefix = format!("{}{under}", self.prefix);
        let mut pages = client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(&format!("s3://{}/{prefix}", self.bucket), e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                objects.push(Object {
                    key: key.to_string(),
                    modified: object
                        .last_modified()
                        .and_then(|time| SystemTime::try_from(*time).ok()),
                });
            }
        }
        Ok(objects)
    }

    async fn read_if_present(&self, client: &Client, key: &str) -> Result<Option<String>, String> {
        let object = match client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(error) if error.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                return Ok(None);
            }
            Err(error) => return Err(s3_error(&format!("s3://{}/{key}", self.bucket), error)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| format!("s3://{}/{key}: {e}", self.bucket))?
            .into_bytes();
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn delete(&self, client: &Client, key: &str) -> Result<(), String> {
        client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_error(&format!("s3://{}/{key}", self.bucket), e))
    }

    /// The recorded versions of `name`, oldest first, the current one marked.
    pub async fn versions(&self, client: &Client, name: &str) -> Result<Vec<Version>, String> {
        let current = self
            .read_if_present(client, &self.manifest_key(name))
            .await?;
        let objects = self
            .list(client, &format!("{VERSIONS_DIR}/{name}/"))
            .await?;
        let mut versions = Vec::new();
        for object in objects {
            let Some(id) = object
                .key
                .rsplit('/')
                .next()
                .and_then(|file| file.strip_suffix(".yaml"))
            else {
                continue;
            };
            let Some(published) = object.modified.or_else(|| id_time(id)) else {
                continue;
            };
            // Pruned meanwhile: not a version any more.
            let Some(text) = self.read_if_present(client, &object.key).await? else {
                continue;
            };
            versions.push(Version {
                id: id.to_string(),
                published,
                module: module_of(&text, name),
                text,
                current: false,
            });
        }
        versions.sort_by(|a, b| a.published.cmp(&b.published).then(a.id.cmp(&b.id)));
        if let Some(current) = current
            && let Some(version) = versions.iter_mut().rev().find(|v| v.text == current)
        {
            version.current = true;
        }
        Ok(versions)
    }

    fn manifest_key(&self, name: &str) -> String {
        format!("{}{name}/{MANIFEST_FILE}", self.prefix)
    }

    fn module_key(&self, name: &str, module: &str) -> String {
        format!("{}{name}/{module}", self.prefix)
    }

    /// When the object at `key` was last written, `None` when it is gone.
    async fn modified(&self, client: &Client, key: &str) -> Result<Option<SystemTime>, String> {
        match client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => Ok(Some(
                object
                    .last_modified()
                    .and_then(|time| SystemTime::try_from(*time).ok())
                    .unwrap_or_else(SystemTime::now),
            )),
            Err(error) if error.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                Ok(None)
            }
            Err(error) => Err(s3_error(&format!("s3://{}/{key}", self.bucket), error)),
        }
    }

    /// Rewrites the module at `key` onto itself, so that its write time is now: a prune running
    /// meanwhile then keeps it. False when it is gone.
    pub async fn refresh_module(&self, client: &Client, key: &str) -> Result<bool, String> {
        self.refresh(client, key, "application/wasm").await
    }

    /// Rewrites the object at `key` onto itself, with `content_type`. False when it is gone.
    pub async fn refresh(
        &self,
        client: &Client,
        key: &str,
        content_type: &str,
    ) -> Result<bool, String> {
        let copied = client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(format!("{}/{key}", self.bucket))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type(content_type)
            .send()
            .await;
        match copied {
            Ok(_) => Ok(true),
            Err(error) if error.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                Ok(false)
            }
            Err(error) => Err(s3_error(&format!("s3://{}/{key}", self.bucket), error)),
        }
    }

    /// Makes `version` (an id, a unique start of one, or a start of a module digest of at least
    /// 6 hex digits; by default the newest version unlike the current one) current again.
    /// Returns the version it went back to.
    pub async fn rollback(
        &self,
        client: &Client,
        name: &str,
        version: Option<&str>,
    ) -> Result<Version, String> {
        let versions = self.versions(client, name).await?;
        if versions.is_empty() {
            return Err(format!(
                "{name}: no versions are recorded in s3://{}/{}{VERSIONS_DIR}/{name}/ (publish it first)",
                self.bucket, self.prefix
            ));
        }
        let current = versions.iter().find(|v| v.current).map(|v| v.text.as_str());
        let target = match version {
            None => versions
                .iter()
                .rev()
                .find(|v| Some(v.text.as_str()) != current)
                .ok_or_else(|| format!("{name}: there is no earlier version to roll back to"))?,
            Some(wanted) => {
                pick(&versions, wanted).map_err(|reason| format!("{name}: {reason}"))?
            }
        };
        let Some(module) = &target.module else {
            return Err(format!(
                "{name}: version {} cannot be restored: its manifest does not parse any more",
                target.id
            ));
        };
        // Refreshed first, so a prune running meanwhile keeps it.
        let module_key = self.module_key(name, module);
        if !self.refresh_module(client, &module_key).await? {
            return Err(format!(
                "{name}: version {} cannot be restored: its module {} was pruned",
                target.id,
                target.short_module()
            ));
        }
        self.record_version(client, name, &target.text).await?;
        let key = self.manifest_key(name);
        client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/yaml")
            .body(ByteStream::from(target.text.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| s3_error(&format!("s3://{}/{key}", self.bucket), e))?;
        Ok(target.clone())
    }

    /// Deletes what no environment can need any more (see the module's documentation), keeping
    /// every version that was current within `keep`. Returns the deleted keys.
    pub async fn prune(&self, client: &Client, keep: Duration) -> Result<Vec<String>, String> {
        let now = SystemTime::now();
        let since = now.checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH);
        let objects = self.list(client, "").await?;

        // Per function: its modules and its manifest's age; the bundles by module digest.
        let mut modules: BTreeMap<String, Vec<(String, Option<SystemTime>)>> = BTreeMap::new();
        let mut manifests: BTreeMap<String, Option<SystemTime>> = BTreeMap::new();
        let mut bundles: Vec<(String, String, Option<SystemTime>)> = Vec::new();
        for object in &objects {
            let path = &object.key[self.prefix.len()..];
            let Some((top, rest)) = path.split_once('/') else {
                continue;
            };
            if top == ARTIFACTS_DIR {
                if let Some(digest) = rest.rsplit('/').next() {
                    bundles.push((digest.to_string(), object.key.clone(), object.modified));
                }
            } else if top == VERSIONS_DIR {
                continue;
            } else if rest == MANIFEST_FILE {
                manifests.insert(top.to_string(), object.modified);
            } else if is_content_addressed(rest) {
                modules
                    .entry(top.to_string())
                    .or_default()
                    .push((rest.to_string(), object.modified));
            }
        }

        let mut deleted = Vec::new();
        let mut pruned: Vec<(String, String)> = Vec::new();
        for (name, manifest_written) in &manifests {
            let versions = self.versions(client, name).await?;
            let current_text = self
                .read_if_present(client, &self.manifest_key(name))
                .await?;
            let Some(current) = current_text
                .as_deref()
                .and_then(|text| module_of(text, name))
            else {
                // Deleted meanwhile, or a manifest that does not parse: what it needs is
                // unknown, so all of it stays.
                continue;
            };
            let current_index = versions.iter().position(|v| v.current);
            let mut kept: BTreeSet<String> = BTreeSet::from([current]);
            let mut recorded: BTreeSet<String> = BTreeSet::new();
            for (index, version) in versions.iter().enumerate() {
                recorded.extend(version.module.clone());
                // Current until the next version was recorded; the newest until now.
                let until = versions.get(index + 1).map_or(now, |next| next.published);
                let newest = index + 1 == versions.len();
                let previous = current_index.is_some_and(|current| index + 1 == current);
                if version.current || newest || previous || until >= since {
                    kept.extend(version.module.clone());
                } else {
                    let key = self.version_key(name, &version.id);
                    self.delete(client, &key).await?;
                    deleted.push(key);
                }
            }
            for (module, written) in modules.get(name).into_iter().flatten() {
                let unrecorded_but_recent = !recorded.contains(module)
                    && manifest_written.is_none_or(|written| written >= since);
                let fresh = written.is_none_or(|written| written >= since);
                if !(kept.contains(module) || unrecorded_but_recent || fresh) {
                    pruned.push((name.clone(), module.clone()));
                }
            }
        }

        // Every module that stays, by digest: a bundle of one of them stays too.
        let pruned_set: BTreeSet<&(String, String)> = pruned.iter().collect();
        let staying: BTreeSet<String> = modules
            .iter()
            .flat_map(|(name, files)| files.iter().map(move |(file, _)| (name, file)))
            .filter(|(name, file)| !pruned_set.contains(&((*name).clone(), (*file).clone())))
            .filter_map(|(_, file)| file.strip_suffix(".wasm").map(str::to_string))
            .collect();
        for (name, module) in &pruned {
            let key = self.module_key(name, module);
            // Looked at again: a publish or rollback may have refreshed it since the listing.
            match self.modified(client, &key).await? {
                Some(written) if written >= since => continue,
                None => continue,
                Some(_) => {}
            }
            let digest = module.trim_end_matches(".wasm");
            if !staying.contains(digest) {
                for (_, bundle, _) in bundles.iter().filter(|(d, _, _)| d == digest) {
                    self.delete(client, bundle).await?;
                    deleted.push(bundle.clone());
                }
            }
            self.delete(client, &key).await?;
            deleted.push(key);
        }
        // Bundles whose module is gone (left by an earlier prune), once older than the window.
        let all_modules: BTreeSet<&str> = modules
            .values()
            .flatten()
            .filter_map(|(file, _)| file.strip_suffix(".wasm"))
            .collect();
        for (digest, bundle, written) in &bundles {
            if !all_modules.contains(digest.as_str())
                && written.is_some_and(|written| written < since)
                && !deleted.contains(bundle)
            {
                self.delete(client, bundle).await?;
                deleted.push(bundle.clone());
            }
        }
        Ok(deleted)
    }
}

/// The module file a manifest text names, if it parses.
fn module_of(text: &str, name: &str) -> Option<String> {
    Manifest::parse_with(text, MANIFEST_FILE, Some(name), Rules::Serving)
        .ok()
        .map(|manifest| manifest.module)
}

/// The one version `wanted` names: an id, a unique start of one, or a start (6 or more hex
/// digits) of its module's digest (the newest such version).
fn pick<'a>(versions: &'a [Version], wanted: &str) -> Result<&'a Version, String> {
    if let Some(exact) = versions.iter().find(|v| v.id == wanted) {
        return Ok(exact);
    }
    let by_id: Vec<&Version> = versions
        .iter()
        .filter(|v| v.id.starts_with(wanted))
        .collect();
    match by_id.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => {
            return Err(format!(
                "`{wanted}` names {} versions; give more of the id",
                many.len()
            ));
        }
    }
    let hex = wanted.len() >= 6 && wanted.bytes().all(|b| b.is_ascii_hexdigit());
    if hex
        && let Some(newest) = versions.iter().rev().find(|v| {
            v.module
                .as_deref()
                .is_some_and(|module| module.starts_with(&wanted.to_ascii_lowercase()))
        })
    {
        return Ok(newest);
    }
    Err(format!(
        "no version `{wanted}` (see `wasm-lambda versions`: a version id, or the start of a module digest)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, module: &str) -> Version {
        Version {
            id: id.to_string(),
            published: id_time(id).unwrap(),
            module: Some(format!("{module}.wasm")),
            text: module.to_string(),
            current: false,
        }
    }

    #[test]
    fn a_version_is_named_by_id_its_start_or_its_module() {
        let versions = [
            version("2026-12-01T10:00:00.000Z", "aaaaaa11"),
            version("2026-12-01T11:00:00.000Z", "bbbbbb22"),
            version("2026-12-01T11:30:00.000Z", "aaaaaa11"),
        ];
        assert_eq!(
            pick(&versions, "2026-12-01T10:00:00.000Z").unwrap().id,
            versions[0].id
        );
        assert_eq!(
            pick(&versions, "2026-12-01T11:3").unwrap().id,
            versions[2].id
        );
        assert!(
            pick(&versions, "2026-12-01T11")
                .unwrap_err()
                .contains("names 2 versions")
        );
        assert_eq!(
            pick(&versions, "aaaaaa").unwrap().id,
            versions[2].id,
            "the newest"
        );
        assert_eq!(pick(&versions, "BBBBBB").unwrap().id, versions[1].id);
        assert!(pick(&versions, "aaa").is_err(), "too short for a digest");
        assert!(pick(&versions, "cccccc").is_err());
    }

    #[test]
    fn version_ids_sort_by_time_and_parse_back() {
        let time = humantime::parse_rfc3339("2026-12-01T11:45:12.345Z").unwrap();
        let id = version_id(time, "a");
        assert!(id.starts_with("2026-12-01T11:45:12.345Z-"), "{id}");
        assert_eq!(id_time(&id), Some(time));
        assert_ne!(id, version_id(time, "b"), "two versions in one millisecond");
        assert!(id < version_id(time + Duration::from_millis(1), "a"));
    }

    #[test]
    fn only_content_addressed_modules_are_pruned() {
        assert!(is_content_addressed(&format!("{}.wasm", "ab".repeat(32))));
        assert!(!is_content_addressed("hello.wasm"));
        assert!(!is_content_addressed(&format!(
            "{}.wasm.wasm",
            "ab".repeat(32)
        )));
        assert!(!is_content_addressed(&format!("{}.wasm", "AB".repeat(32))));
    }
}
