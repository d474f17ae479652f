//! The catalog: every function's manifest and the routing table built from them, kept current
//! by re-listing the store once `REVALIDATE_AFTER` has passed, and the way from a function name
//! to a compiled, callable function.
//!
//! A manifest is re-read only when its version (file mtime + size, S3 ETag) changed. One bad
//! manifest makes that one function unavailable; the others keep serving. When the store cannot
//! be read, the last catalog keeps serving (stale-if-error) and a warning is logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::cache::{PluginCache, PluginKey};
use crate::error::Error;
use crate::invoke::CompiledFunction;
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::router::RouteTable;
use crate::store::{FunctionStore, StoreError, Version};

/// Manifests read from the store at once during a refresh.
const PARALLEL_READS: usize = 32;

/// A function whose manifest is valid.
#[derive(Debug)]
pub struct Entry {
    pub manifest: Arc<Manifest>,
    version: Version,
    /// SHA-256 of the manifest text.
    digest: String,
}

/// One consistent view of the store.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub functions: BTreeMap<String, Arc<Entry>>,
    /// Functions whose manifest is invalid: version read and the reason.
    pub invalid: BTreeMap<String, (Version, String)>,
    pub routes: Arc<RouteTable>,
}

/// Where a function's module was last seen.
#[derive(Debug, Clone)]
struct ModuleState {
    path: String,
    version: Version,
    digest: String,
    checked_at: Instant,
}

/// The catalog and the compiled-plugin cache behind it. One per process.
pub struct Catalog {
    store: Arc<dyn FunctionStore>,
    revalidate_after: Duration,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// When the store was last listed; held while refreshing so refreshes never overlap.
    refreshed_at: tokio::sync::Mutex<Option<Instant>>,
    modules: Mutex<HashMap<String, ModuleState>>,
    plugins: PluginCache,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Catalog {
    pub fn new(
        store: Arc<dyn FunctionStore>,
        revalidate_after: Duration,
        plugins: PluginCache,
    ) -> Catalog {
        Catalog {
            store,
            revalidate_after,
            snapshot: RwLock::new(None),
            refreshed_at: tokio::sync::Mutex::new(None),
            modules: Mutex::new(HashMap::new()),
            plugins,
        }
    }

    pub fn store(&self) -> &dyn FunctionStore {
        self.store.as_ref()
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.read().expect("snapshot lock").clone()
    }

    /// The current snapshot, refreshed from the store first if it is older than
    /// `REVALIDATE_AFTER`. Fails only if the store has never been read.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        let mut refreshed_at = self.refreshed_at.lock().await;
        let due = refreshed_at.is_none_or(|at| at.elapsed() >= self.revalidate_after);
        if let (false, Some(snapshot)) = (due, self.current()) {
            return Ok(snapshot);
        }
        match self.refresh().await {
            Ok(snapshot) => {
                *refreshed_at = Some(Instant::now());
                Ok(snapshot)
            }
            Err(error) => match self.current() {
                Some(snapshot) => {
                    warn!(%error, "function store unavailable; serving the last catalog");
                    *refreshed_at = Some(Instant::now());
                    Ok(snapshot)
                }
                None => Err(error),
            },
        }
    }

    async fn refresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        let listed = self.store.list().await?;
        let old = self.current().unwrap_or_default();
        let unchanged = listed.len() == old.functions.len() + old.invalid.len()
            && listed.iter().all(|(name, version)| {
                old.functions.get(name).map(|e| &e.version) == Some(version)
                    || old.invalid.get(name).map(|(v, _)| v) == Some(version)
            });
        if unchanged && self.current().is_some() {
            return Ok(old);
        }

        let mut functions = BTreeMap::new();
        let mut invalid = BTreeMap::new();
        let mut to_read = Vec::new();
        for (name, version) in listed {
            match (old.functions.get(&name), old.invalid.get(&name)) {
                (Some(entry), _) if entry.version == version => {
                    functions.insert(name, Arc::clone(entry));
                }
                (_, Some(bad)) if bad.0 == version => {
                    invalid.insert(name, bad.clone());
                }
                _ => to_read.push(name),
            }
        }
        let mut reads = futures::stream::iter(to_read)
            .map(|name| async move {
                let read = self.store.read(&name, MANIFEST_FILE, None).await;
                (name, read)
            })
            .buffer_unordered(PARALLEL_READS);
        while let Some((name, read)) = reads.next().await {
            let file = self.store.locate(&name, MANIFEST_FILE);
            match read {
                Ok(Some(stored)) => match parse(&stored.bytes, &file, &name) {
                    Ok(manifest) => {
                        info!(function = %name, "loaded manifest");
                        functions.insert(
                            name,
                            Arc::new(Entry {
                                manifest: Arc::new(manifest),
                                version: stored.version,
                                digest: sha256_hex(&stored.bytes),
                            }),
                        );
                    }
                    Err(reason) => {
                        warn!(function = %name, %reason, "function unavailable: invalid manifest");
                        invalid.insert(name, (stored.version, reason));
                    }
                },
                // Deleted between listing and reading.
                Ok(None) | Err(StoreError::NotFound(_)) => {}
                Err(error) => match old.functions.get(&name) {
                    Some(entry) => {
                        warn!(function = %name, %error, "manifest unreadable; serving the last version");
                        functions.insert(name, Arc::clone(entry));
                    }
                    None => warn!(function = %name, %error, "manifest unreadable"),
                },
            }
        }
        drop(reads);

        let (routes, conflicts) =
            RouteTable::build(functions.values().map(|e| e.manifest.as_ref()));
        for conflict in conflicts {
            warn!(kept = %conflict.kept, dropped = %conflict.dropped, reason = %conflict.reason, "route conflict");
        }
        let snapshot = Arc::new(Snapshot {
            functions,
            invalid,
            routes: Arc::new(routes),
        });
        *self.snapshot.write().expect("snapshot lock") = Some(Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// The manifest entry for `name`, or why it cannot be served.
    pub fn entry(&self, snapshot: &Snapshot, name: &str) -> Result<Arc<Entry>, Error> {
        if let Some(entry) = snapshot.functions.get(name) {
            return Ok(Arc::clone(entry));
        }
        if let Some((_, reason)) = snapshot.invalid.get(name) {
            return Err(Error::ManifestInvalid {
                function: name.to_string(),
                reason: reason.clone(),
            });
        }
        Err(Error::FunctionNotFound {
            function: name.to_string(),
            store: self.store.describe(),
        })
    }

    /// The compiled function for `entry`, compiling it on a cache miss.
    pub async fn compiled(&self, entry: &Entry) -> Result<Arc<CompiledFunction>, Error> {
        let manifest = &entry.manifest;
        let (module_digest, fetched) = match &manifest.sha256 {
            Some(digest) => (digest.clone(), None),
            None => self.module_digest(manifest).await?,
        };
        let key = PluginKey {
            function: manifest.name.clone(),
            module: module_digest.clone(),
            manifest: entry.digest.clone(),
        };
        let fetch = async move {
            let bytes = match fetched {
                Some(bytes) => bytes,
                None => self.fetch_module(manifest).await?,
            };
            let actual = sha256_hex(&bytes);
            if actual != module_digest {
                return Err(Error::ModuleInvalid {
                    function: manifest.name.clone(),
                    reason: format!(
                        "{} hashes to {actual}, not the expected {module_digest}",
                        self.store.locate(&manifest.name, &manifest.module)
                    ),
                });
            }
            Ok(bytes)
        };
        let module_location = self.store.locate(&manifest.name, &manifest.module);
        self.plugins
            .get_or_compile(key, Arc::clone(manifest), fetch)
            .await
            .map_err(|error| match error {
                // Name the module file in compile errors, as every other error names its file.
                Error::ModuleInvalid { function, reason } if !reason.contains(&module_location) => {
                    Error::ModuleInvalid {
                        function,
                        reason: format!("{module_location}: {reason}"),
                    }
                }
                other => other,
            })
    }

    async fn fetch_module(&self, manifest: &Manifest) -> Result<Bytes, Error> {
        match self
            .store
            .read(&manifest.name, &manifest.module, None)
            .await
        {
            Ok(Some(stored)) => Ok(stored.bytes),
            Ok(None) => unreachable!("a read without a known version always returns content"),
            Err(error) => Err(self.module_error(manifest, error)),
        }
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

    /// The digest of a module without a `sha256` in its manifest, re-reading the module only
    /// when its version changed. Returns the bytes too when it had to read them.
    async fn module_digest(&self, manifest: &Manifest) -> Result<(String, Option<Bytes>), Error> {
        let known = self
            .modules
            .lock()
            .expect("module state lock")
            .get(&manifest.name)
            .filter(|state| state.path == manifest.module)
            .cloned();
        if let Some(state) = &known
            && state.checked_at.elapsed() < self.revalidate_after
        {
            return Ok((state.digest.clone(), None));
        }
        let read = self
            .store
            .read(
                &manifest.name,
                &manifest.module,
                known.as_ref().map(|s| &s.version),
            )
            .await;
        let (state, bytes) = match (read, known) {
            (Ok(None), Some(state)) => (state, None),
            (Ok(Some(stored)), _) => {
                let state = ModuleState {
                    path: manifest.module.clone(),
                    digest: sha256_hex(&stored.bytes),
                    version: stored.version,
                    checked_at: Instant::now(),
                };
                (state, Some(stored.bytes))
            }
            (Err(StoreError::Unavailable { location, reason }), Some(state)) => {
                warn!(function = %manifest.name, %location, %reason, "module unreadable; serving the last version");
                (state, None)
            }
            (Ok(None), None) => {
                unreachable!("a read without a known version always returns content")
            }
            (Err(error), _) => return Err(self.module_error(manifest, error)),
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

fn parse(bytes: &[u8], file: &str, name: &str) -> Result<Manifest, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("{file}: manifest: is not UTF-8 text"))?;
    Manifest::parse(text, file, Some(name)).map_err(|error| error.to_string())
}
