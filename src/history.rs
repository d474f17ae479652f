//! What was published, and when: each function's versions, rollback, and pruning that never
//! takes what an environment may still need.
//!
//! Every publish (and rollback) records the manifest it makes current as
//! `_versions/<name>/<id>.yaml` under the prefix, before the manifest itself, where `<id>` is the
//! UTC time it was published (`2026-12-01T11:45:12.345Z`). A version was current from its
//! time until the next version's. Its module is the content-addressed `<name>/<sha256>.wasm` it
//! names, so rolling back is writing an old manifest again.
//!
//! Pruning keeps, for each function, its current manifest's module and every version that was
//! current within the keep window (by default `REVALIDATE_AFTER`: an environment trusts a
//! manifest it read for that long, and may still fetch its module meanwhile). It deletes the
//! other versions' records, the modules no kept version names, and those modules' compiled
//! bundles (`_compiled/<engine>/<sha256>`, which carry the module too). A module no record names
//! (published before records were kept) stopped being current no later than the manifest that
//! replaced it was written, so it is kept while that manifest is younger than the window; and a
//! module uploaded within the window is kept whatever names it (a publish running meanwhile
//! uploads its module before the record and the manifest that name it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::publish::Target;
use crate::store::ARTIFACTS_DIR;

/// Where the versions are recorded, under the prefix.
pub const VERSIONS_DIR: &str = "_versions";

/// One recorded version of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// When it was published, as written in its key (`2026-12-01T11:45:12.345Z`).
    pub id: String,
    pub published: SystemTime,
    /// The SHA-256 of its module.
    pub module: String,
    /// Its manifest, as published.
    pub text: String,
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

/// The id of a version published at `time`.
pub fn version_id(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
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
        let id = version_id(SystemTime::now());
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

    /// The recorded versions of `name`, oldest first.
    pub async fn versions(&self, client: &Client, name: &str) -> Result<Vec<Version>, String> {
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
            let Ok(published) = humantime::parse_rfc3339(id) else {
                continue;
            };
            // Pruned meanwhile: not a version any more.
            let Some(text) = self.read_if_present(client, &object.key).await? else {
                continue;
            };
            let module = module_of(&text, name).unwrap_or_default();
            versions.push(Version {
                id: id.to_string(),
                published,
                module,
                text,
            });
        }
        versions.sort_by(|a, b| a.published.cmp(&b.published).then(a.id.cmp(&b.id)));
        Ok(versions)
    }

    /// The module the current manifest of `name` names, if it has one that parses.
    async fn current_module(&self, client: &Client, name: &str) -> Result<Option<String>, String> {
        let key = format!("{}{name}/{MANIFEST_FILE}", self.prefix);
        Ok(self
            .read_if_present(client, &key)
            .await?
            .and_then(|text| module_of(&text, name)))
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
        let Some(current) = versions.last() else {
            return Err(format!(
                "{name}: no versions are recorded in s3://{}/{}{VERSIONS_DIR}/{name}/ (publish it first)",
                self.bucket, self.prefix
            ));
        };
        let target = match version {
            None => versions
                .iter()
                .rev()
                .find(|v| v.text != current.text)
                .ok_or_else(|| format!("{name}: there is no earlier version to roll back to"))?,
            Some(wanted) => {
                pick(&versions, wanted).map_err(|reason| format!("{name}: {reason}"))?
            }
        };
        let module_key = format!("{}{name}/{}.wasm", self.prefix, target.module);
        client
            .head_object()
            .bucket(&self.bucket)
            .key(&module_key)
            .send()
            .await
            .map_err(
                |error| match error.raw_response().map(|r| r.status().as_u16()) {
                    Some(404) => format!(
                        "{name}: version {} cannot be restored: its module {} was pruned",
                        target.id,
                        &target.module[..target.module.len().min(12)]
                    ),
                    _ => s3_error(&format!("s3://{}/{module_key}", self.bucket), error),
                },
            )?;
        self.record_version(client, name, &target.text).await?;
        let key = format!("{}{name}/{MANIFEST_FILE}", self.prefix);
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
        let relative = |object: &Object| object.key[self.prefix.len()..].to_string();

        // Per function: its modules, its manifest's age, and its version records.
        let mut modules: BTreeMap<String, Vec<(String, Option<SystemTime>)>> = BTreeMap::new();
        let mut manifests: BTreeMap<String, Option<SystemTime>> = BTreeMap::new();
        let mut bundles: Vec<(String, String)> = Vec::new();
        for object in &objects {
            let path = relative(object);
            let mut parts = path.splitn(2, '/');
            let (Some(top), Some(rest)) = (parts.next(), parts.next()) else {
                continue;
            };
            if top == ARTIFACTS_DIR {
                if let Some(digest) = rest.rsplit('/').next() {
                    bundles.push((digest.to_string(), object.key.clone()));
                }
            } else if top == VERSIONS_DIR {
                continue;
            } else if rest == MANIFEST_FILE {
                manifests.insert(top.to_string(), object.modified);
            } else if let Some(digest) = rest.strip_suffix(".wasm")
                && !digest.contains('/')
            {
                modules
                    .entry(top.to_string())
                    .or_default()
                    .push((digest.to_string(), object.modified));
            }
        }

        let mut deleted = Vec::new();
        let mut pruned_modules: BTreeSet<String> = BTreeSet::new();
        let mut kept_modules: BTreeSet<String> = BTreeSet::new();
        for (name, manifest_written) in &manifests {
            let Some(current) = self.current_module(client, name).await? else {
                // Deleted meanwhile, or a manifest that does not parse: what it needs is
                // unknown, so all of its modules stay.
                kept_modules.extend(modules.get(name).into_iter().flatten().map(|m| m.0.clone()));
                continue;
            };
            let versions = self.versions(client, name).await?;
            let mut kept: BTreeSet<String> = BTreeSet::from([current.clone()]);
            let mut recorded: BTreeSet<String> = BTreeSet::new();
            for (index, version) in versions.iter().enumerate() {
                recorded.insert(version.module.clone());
                // Current until the next version was published; the newest until now.
                let until = versions.get(index + 1).map_or(now, |next| next.published);
                if until >= since || index + 1 == versions.len() {
                    kept.insert(version.module.clone());
                } else {
                    let key = self.version_key(name, &version.id);
                    self.delete(client, &key).await?;
                    deleted.push(key);
                }
            }
            for (module, uploaded) in modules.get(name).into_iter().flatten() {
                let unrecorded_but_recent = !recorded.contains(module)
                    && manifest_written.is_none_or(|written| written >= since);
                // Uploaded within the window: a publish running now may be about to name it.
                let fresh = uploaded.is_none_or(|uploaded| uploaded >= since);
                if kept.contains(module) || unrecorded_but_recent || fresh {
                    kept_modules.insert(module.clone());
                    continue;
                }
                let key = format!("{}{name}/{module}.wasm", self.prefix);
                self.delete(client, &key).await?;
                deleted.push(key);
                pruned_modules.insert(module.clone());
            }
        }
        // A function with modules and no manifest (removed by hand) keeps them.
        for (name, digests) in &modules {
            if !manifests.contains_key(name) {
                kept_modules.extend(digests.iter().map(|m| m.0.clone()));
            }
        }
        // Bundles carry their module: those of pruned modules go too (unless another function
        // still names the same module).
        for (digest, key) in bundles {
            if pruned_modules.contains(&digest) && !kept_modules.contains(&digest) {
                self.delete(client, &key).await?;
                deleted.push(key);
            }
        }
        Ok(deleted)
    }
}

/// The module digest a manifest text names, if it parses.
fn module_of(text: &str, name: &str) -> Option<String> {
    let manifest = Manifest::parse(text, MANIFEST_FILE, Some(name)).ok()?;
    Some(
        manifest
            .sha256
            .unwrap_or_else(|| manifest.module.trim_end_matches(".wasm").to_string()),
    )
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
        && let Some(newest) = versions
            .iter()
            .rev()
            .find(|v| v.module.starts_with(&wanted.to_ascii_lowercase()))
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
            published: humantime::parse_rfc3339(id).unwrap(),
            module: module.to_string(),
            text: module.to_string(),
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
        assert_eq!(version_id(time), "2026-12-01T11:45:12.345Z");
        assert!(version_id(time) < version_id(time + Duration::from_millis(1)));
    }
}
