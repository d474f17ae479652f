//! The loader: from a function's manifest to its compiled function. On a cache miss it fetches
//! the fleet's compiled artifacts, which carry the module, else the module alone (either checked
//! against its digest), compiles (or loads what the artifacts hold), shares what compiling
//! wrote, and returns the compiled function with its load figures. In a published store a
//! version that does not load falls back to the last one that did; a version known not to load
//! is not fetched again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::time::timeout_at;
use tracing::{debug, info, warn};

use crate::artifacts::{ArtifactKey, Downloaded};
use crate::cache::{PluginCache, PluginKey};
use crate::catalog::{Entry, sha256_hex};
use crate::error::Error;
use crate::invoke::{CompileOptions, CompiledFunction, KnownModule, Loaded};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::store::{FunctionStore, StoreError, Stored, Version};

/// How many versions known not to load are remembered.
const MAX_REMEMBERED: usize = 1024;

/// The digest of a module whose manifest has no `sha256`.
#[derive(Debug, Clone)]
struct ModuleState {
    path: String,
    /// The manifest version it was read under (published stores re-read only with a new one).
    manifest: String,
    version: Version,
    digest: String,
    checked_at: Instant,
}

/// Compiles functions for the catalog's entries, through the plugin cache.
pub struct Loader {
    store: Arc<dyn FunctionStore>,
    published: bool,
    revalidate_after: Duration,
    options: CompileOptions,
    plugins: PluginCache,
    modules: Mutex<HashMap<String, ModuleState>>,
    /// The newest entry of each function that compiled (published stores).
    loaded: Mutex<HashMap<String, Arc<Entry>>>,
    /// Versions known not to load, so they are not fetched and compiled on every call.
    broken: Mutex<HashMap<PluginKey, Error>>,
}

impl Loader {
    pub fn new(
        store: Arc<dyn FunctionStore>,
        revalidate_after: Duration,
        plugins: PluginCache,
        options: CompileOptions,
    ) -> Loader {
        Loader {
            published: store.published(),
            store,
            revalidate_after,
            options,
            plugins,
            modules: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
            broken: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, checked_at: Instant) -> bool {
        checked_at.elapsed() < self.revalidate_after
    }

    /// The compiled function for `entry`, compiling it on a cache miss; store reads are bounded
    /// by `max_wait`. In a published store, a version that does not load falls back to the last
    /// one that did.
    pub async fn compiled(
        &self,
        entry: &Arc<Entry>,
        max_wait: Duration,
    ) -> Result<(Arc<CompiledFunction>, Loaded), Error> {
        let deadline = Instant::now() + max_wait;
        let name = &entry.manifest.name;
        match self.load(entry, deadline).await {
            Ok(function) => {
                if self.published {
                    let mut loaded = self.loaded.lock().expect("loaded lock");
                    if !loaded
                        .get(name)
                        .is_some_and(|good| Arc::ptr_eq(good, entry))
                    {
                        loaded.insert(name.clone(), Arc::clone(entry));
                    }
                }
                Ok(function)
            }
            // A new version that does not load, or whose module the store cannot give now (it
            // went down right after the listing saw the new manifest): the last good one keeps
            // serving, from the cache, until the new one loads.
            Err(error @ (Error::ModuleInvalid { .. } | Error::StoreUnavailable { .. }))
                if self.published =>
            {
                let good = self.loaded.lock().expect("loaded lock").get(name).cloned();
                match good {
                    Some(good) if !Arc::ptr_eq(&good, entry) => {
                        warn!(function = %name, %error, "new version does not load; the last good version keeps serving");
                        self.load(&good, deadline).await.map_err(|_| error)
                    }
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn load(
        &self,
        entry: &Entry,
        deadline: Instant,
    ) -> Result<(Arc<CompiledFunction>, Loaded), Error> {
        let manifest = &entry.manifest;
        let (module_digest, fetched) = match &manifest.sha256 {
            Some(digest) => (digest.clone(), None),
            None => self.module_digest(entry, deadline).await?,
        };
        let key = PluginKey {
            function: manifest.name.clone(),
            module: module_digest.clone(),
            manifest: entry.digest.clone(),
        };
        if let Some(function) = self.plugins.get(&key).await {
            return Ok((function, Loaded::default()));
        }
        if let Some(error) = self.broken.lock().expect("broken lock").get(&key) {
            return Err(error.clone());
        }
        let module_location = || self.store.locate(&manifest.name, &manifest.module);
        let artifacts = self.options.artifacts.clone();
        // A miss: the module (and compiled artifacts) fetched, compiled, what compiling wrote
        // shared; the compiled function carries its load figures.
        let miss = async {
            let started = Instant::now();
            let artifact_key = ArtifactKey::new(&module_digest, manifest.fuel.is_some());
            let published = self.published.then_some(artifacts.as_ref()).flatten();
            // A published module never changes: kept locally by digest, fetched once.
            let kept = match fetched {
                Some(_) => None,
                None => published.and_then(|a| a.module(&module_digest)),
            };
            let read_from_kept = kept.is_some();
            let local = fetched.or(kept);
            // The store's copy must hash to the digest; a local one was checked when read.
            let fetch_checked = || async {
                let bytes = self.fetch_module(manifest, deadline).await?;
                let actual = sha256_hex(&bytes);
                if actual != module_digest {
                    return Err(Error::ModuleInvalid {
                        function: manifest.name.clone(),
                        reason: format!(
                            "{} hashes to {actual}, not the expected {module_digest}",
                            module_location()
                        ),
                    });
                }
                Ok(bytes)
            };
            // The compiled artifacts from the store, unless they are here already, the store
            // keeps none, or its recent listing shows none. A bundle carries its module, so it
            // is asked for first (alone when the module is not here), and the module only if
            // there is no bundle: one request when the store holds one, as `publish` leaves it;
            // one more round trip before a compile when it does not.
            let listed = match &artifacts {
                Some(artifacts)
                    if self.store.keeps_artifacts() && !artifacts.has_compiled(&artifact_key) =>
                {
                    self.store
                        .artifact_listed(&artifact_key.to_string(), self.revalidate_after)
                }
                _ => Some(false),
            };
            // A store that has not answered for the bundle within three quarters of the time
            // left is taken as unavailable: the rest is for the last good version to serve.
            let downloaded = match &artifacts {
                Some(artifacts) if listed != Some(false) => {
                    let wait = deadline.saturating_duration_since(Instant::now()) * 3 / 4;
                    let download = artifacts.download(self.store.as_ref(), &artifact_key);
                    tokio::time::timeout(wait, download)
                        .await
                        .unwrap_or_else(|_| Downloaded {
                            unanswered: Some(format!(
                                "compiled artifacts {artifact_key}: no answer within {} ms",
                                wait.as_millis()
                            )),
                            ..Downloaded::default()
                        })
                }
                _ => Downloaded::default(),
            };
            let bytes = match (local, downloaded.module) {
                (Some(bytes), _) => bytes,
                // The bundle's module, if it is the one expected; else the module itself.
                (None, Some(bytes)) if sha256_hex(&bytes) == module_digest => bytes,
                // A store that gave no answer for the bundle is not asked for the module too: the
                // call fails now, with the time it has left for the last good version.
                (None, None) if downloaded.unanswered.is_some() => {
                    return Err(Error::StoreUnavailable {
                        function: manifest.name.clone(),
                        reason: downloaded.unanswered.unwrap_or_default(),
                    });
                }
                (None, other) => {
                    if other.is_some() {
                        warn!(function = %manifest.name, key = %artifact_key, "compiled artifacts carry another module than the manifest names; fetching it");
                    }
                    fetch_checked().await?
                }
            };
            let downloaded = downloaded.entries;
            let fetched_in = started.elapsed();
            let compiling = artifacts.as_ref().map(|a| a.before_compile());
            let options = self.options.clone();
            let compile_manifest = Arc::clone(manifest);
            let module = bytes.clone();
            // Compiling keeps the module by digest (a published one is then read from there),
            // unless it was just read from there.
            let known = KnownModule {
                digest: module_digest.clone(),
                read_from_kept,
            };
            let mut function = tokio::task::spawn_blocking(move || {
                CompiledFunction::compile(compile_manifest, module, Some(known), options)
            })
            .await
            .map_err(|panic| Error::ModuleInvalid {
                function: manifest.name.clone(),
                reason: format!("compiling panicked: {panic}"),
            })??;
            let mut loaded = Loaded {
                miss: true,
                fetch: fetched_in,
                compile: started.elapsed() - fetched_in,
                compiled_code: None,
            };
            if let (Some(artifacts), Some(compiling)) = (&artifacts, compiling) {
                // What compiling wrote into the cache: nothing when a cached artifact was loaded.
                let changed = compiling.finish();
                loaded.compiled_code = Some(!changed.is_empty());
                artifacts.mark_compiled(&artifact_key);
                info!(
                    function = %manifest.name,
                    artifact = if changed.is_empty() { "loaded" } else { "compiled" },
                    from_store = downloaded,
                    "compiled code"
                );
                debug!(function = %manifest.name, ?changed, "compile cache entries written");
                if !changed.is_empty() {
                    // Compiling allocated far more than the function keeps (hundreds of MiB for
                    // a module of many functions): handed back, as after an eviction.
                    tokio::task::spawn_blocking(crate::cache::release_freed_memory);
                }
                // Compiled here, even after a download (whose entries then did not fit this
                // engine): shared, so the next cold environment loads.
                if !changed.is_empty() && self.store.keeps_artifacts() {
                    let (store, artifacts) = (Arc::clone(&self.store), Arc::clone(artifacts));
                    tokio::spawn(async move {
                        artifacts
                            .upload(store.as_ref(), &artifact_key, &changed, &bytes)
                            .await;
                    });
                }
            }
            function.loaded = loaded;
            Ok(function)
        };
        let result = self.plugins.get_or_insert(key.clone(), miss).await;
        result
            .map_err(|error| match error {
                // Name the module file in compile errors, as every other error names its file.
                Error::ModuleInvalid { function, reason } => {
                    let location = module_location();
                    let reason = if reason.contains(&location) {
                        reason
                    } else {
                        format!("{location}: {reason}")
                    };
                    Error::ModuleInvalid { function, reason }
                }
                other => other,
            })
            .inspect_err(|error| {
                if let Error::ModuleInvalid { .. } = error {
                    let mut broken = self.broken.lock().expect("broken lock");
                    if broken.len() >= MAX_REMEMBERED {
                        broken.clear();
                    }
                    broken.insert(key, error.clone());
                }
            })
    }

    /// Reads `manifest`'s module (or, with `known`, only if it changed), by the deadline.
    async fn read_module(
        &self,
        manifest: &Manifest,
        known: Option<&Version>,
        deadline: Instant,
    ) -> Result<Option<Stored>, Error> {
        let read = self.store.read(&manifest.name, &manifest.module, known);
        match timeout_at(deadline.into(), read).await {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(error)) => Err(self.module_error(manifest, error)),
            Err(_) => Err(Error::StoreUnavailable {
                function: manifest.name.clone(),
                reason: format!(
                    "{}: no answer before the invocation deadline",
                    self.store.locate(&manifest.name, &manifest.module)
                ),
            }),
        }
    }

    async fn fetch_module(&self, manifest: &Manifest, deadline: Instant) -> Result<Bytes, Error> {
        let stored = self.read_module(manifest, None, deadline).await?;
        Ok(stored
            .expect("a read without a known version always returns content")
            .bytes)
    }

    fn module_error(&self, manifest: &Manifest, error: StoreError) -> Error {
        match error {
            StoreError::NotFound(location) => Error::ModuleInvalid {
                function: manifest.name.clone(),
                reason: format!(
                    "{}: module: {location} does not exist{}",
                    self.store.locate(&manifest.name, MANIFEST_FILE),
                    if manifest.build.is_some() {
                        " (build the function first)"
                    } else {
                        ""
                    }
                ),
            },
            StoreError::Unavailable { location, reason } => Error::StoreUnavailable {
                function: manifest.name.clone(),
                reason: format!("{location}: {reason}"),
            },
        }
    }

    /// The digest of a module whose manifest has no `sha256`. In a directory the module is
    /// re-read when its file changed; in a published store only under a new manifest version.
    /// Returns the bytes too when it had to read them.
    async fn module_digest(
        &self,
        entry: &Entry,
        deadline: Instant,
    ) -> Result<(String, Option<Bytes>), Error> {
        let manifest = &entry.manifest;
        let known = {
            let modules = self.modules.lock().expect("module state lock");
            let known = modules
                .get(&manifest.name)
                .filter(|state| state.path == manifest.module)
                .filter(|state| !self.published || state.manifest == entry.digest);
            if let Some(state) = known
                && (self.published || self.fresh(state.checked_at))
            {
                return Ok((state.digest.clone(), None));
            }
            known.cloned()
        };
        let read = self
            .read_module(manifest, known.as_ref().map(|s| &s.version), deadline)
            .await;
        let (state, bytes) = match (read, known) {
            (Ok(None), Some(state)) => (state, None),
            (Ok(Some(stored)), _) => {
                let state = ModuleState {
                    path: manifest.module.clone(),
                    manifest: entry.digest.clone(),
                    digest: sha256_hex(&stored.bytes),
                    version: stored.version,
                    checked_at: Instant::now(),
                };
                (state, Some(stored.bytes))
            }
            (Err(Error::StoreUnavailable { reason, .. }), Some(state)) => {
                warn!(function = %manifest.name, %reason, "module unreadable; the last version read keeps serving");
                (state, None)
            }
            (Ok(None), None) => {
                unreachable!("a read without a known version always returns content")
            }
            (Err(error), _) => return Err(error),
        };
        let digest = state.digest.clone();
        let state = ModuleState {
            checked_at: Instant::now(),
            ..state
        };
        self.modules
            .lock()
            .expect("module state lock")
            .insert(manifest.name.clone(), state);
        Ok((digest, bytes))
    }
}
