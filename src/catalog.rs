//! The catalog: every function's manifest, the routing table built from them, and the way from
//! a function name to a compiled, callable function.
//!
//! Two checks keep it current, both on the `REVALIDATE_AFTER` cadence and both bounded by the
//! invocation's deadline:
//!
//! - **The function called.** Once its manifest is older than `REVALIDATE_AFTER`, it is re-read
//!   conditionally (S3: `If-None-Match` with its ETag; a directory: mtime, size and inode). An
//!   unchanged manifest (304) keeps the compiled plugin; a new version serves from this
//!   invocation on, while calls already running finish on the old one. A function the catalog
//!   has not seen is looked up directly, so a new function answers direct invocations at once.
//! - **The routing table.** Routing needs every manifest's hooks, so the store is listed: a
//!   manifest whose version changed is re-read, a new function becomes routable and a deleted one
//!   disappears. A listing also confirms every unchanged manifest, so a function routed right
//!   after a listing is not read again.
//!
//! When the store fails, what was loaded keeps serving (stale-if-error): one warning per function
//! (or per listing) per interval, and the next check after the interval recovers by itself. Only
//! a function never loaded fails, with `StoreUnavailable`.
//!
//! A *published* store (S3, written by `wasm-lambda publish`) holds immutable, content-addressed
//! modules: a module is fetched once per manifest version and never revalidated, and a new version
//! that does not parse, fails its digest or does not compile never replaces the last good one. In
//! a directory, a broken edit shows at once and rebuilt modules are picked up by their file version.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::time::timeout_at;
use tracing::{debug, info, warn};

use crate::artifacts::{ArtifactKey, Compiling, Downloaded};
use crate::cache::{PluginCache, PluginKey};
use crate::error::Error;
use crate::invoke::{CompiledFunction, Loaded};
use crate::manifest::{MANIFEST_FILE, Manifest, Rules};
use crate::name;
use crate::router::RouteTable;
use crate::store::{FunctionStore, StoreError, Stored, Version};

/// Manifests read from the store at once during a listing.
const PARALLEL_READS: usize = 32;

/// From how many manifests to read on it is worth reading the store's manifest index first.
const INDEX_WORTH_IT: usize = 8;

/// Names remembered as absent, and broken versions remembered, at most; cleared beyond that.
const MAX_REMEMBERED: usize = 1024;

/// A function whose manifest is valid.
#[derive(Debug)]
pub struct Entry {
    pub manifest: Arc<Manifest>,
    /// SHA-256 of the manifest text.
    digest: String,
}

/// One consistent view of the store: what serves and what is routed.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The entry each serving function serves.
    pub functions: BTreeMap<String, Arc<Entry>>,
    /// Functions that cannot serve because their manifest is invalid.
    pub invalid: BTreeMap<String, Invalid>,
    pub routes: Arc<RouteTable>,
    /// The valid hooks of functions whose manifest is invalid: a request or record that no
    /// serving function takes but one of these does is answered with that manifest's error
    /// (`ManifestInvalid`) rather than as unrouted. They never take anything from a serving
    /// function.
    pub broken_routes: Arc<RouteTable>,
}

/// A manifest that does not validate.
#[derive(Debug, Clone)]
pub struct Invalid {
    /// Every problem, on one line.
    pub reason: String,
    /// Every problem on its own, each naming the file and field.
    pub problems: Vec<String>,
    /// The hooks of it that validated (see [`crate::manifest::ManifestError::routable`]).
    routable: Option<Arc<Manifest>>,
}

/// What the store held for one function when last checked.
struct Record {
    version: Version,
    checked_at: Instant,
    /// What `version` parsed to.
    parsed: Result<Arc<Entry>, Invalid>,
    /// The newest version that parsed: a published store keeps serving it when a newer is invalid.
    good: Option<Arc<Entry>>,
    /// When the last "store unavailable" warning for this function was logged.
    warned_at: Option<Instant>,
}

/// The catalog's mutable state, behind one lock held only briefly and never across `.await`.
#[derive(Default)]
struct State {
    records: HashMap<String, Record>,
    /// Names the store did not hold when last asked.
    absent: HashMap<String, Instant>,
    /// `None` until the store has been listed once.
    snapshot: Option<Arc<Snapshot>>,
    /// Records changed since the snapshot was built.
    dirty: bool,
    listed_at: Option<Instant>,
}

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

/// The catalog and the compiled-plugin cache behind it. One per process.
pub struct Catalog {
    store: Arc<dyn FunctionStore>,
    revalidate_after: Duration,
    published: bool,
    /// A published store's manifests are held to the rules every release has had (they were
    /// published by one); a local directory's to all of them.
    rules: Rules,
    state: Mutex<State>,
    /// Held while listing, so listings never overlap.
    listing: tokio::sync::Mutex<()>,
    modules: Mutex<HashMap<String, ModuleState>>,
    plugins: PluginCache,
    /// The newest entry of each function that compiled (published stores).
    loaded: Mutex<HashMap<String, Arc<Entry>>>,
    /// Versions known not to load, so they are not fetched and compiled on every call.
    broken: Mutex<HashMap<PluginKey, Error>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Record {
    /// The entry this function serves, or why it cannot.
    fn serving(&self, published: bool) -> Result<&Arc<Entry>, &Invalid> {
        match (&self.parsed, &self.good) {
            (Ok(entry), _) => Ok(entry),
            (Err(_), Some(good)) if published => Ok(good),
            (Err(reason), _) => Err(reason),
        }
    }
}

/// What a cache miss found before compiling, for sharing what compiling wrote.
struct Miss {
    artifact_key: ArtifactKey,
    /// The compile in progress, and the cache before it.
    compiling: Compiling,
    /// How many cache entries the store gave.
    downloaded: usize,
    module: Bytes,
}

impl Catalog {
    pub fn new(
        store: Arc<dyn FunctionStore>,
        revalidate_after: Duration,
        plugins: PluginCache,
    ) -> Catalog {
        Catalog {
            published: store.published(),
            rules: if store.published() {
                Rules::Serving
            } else {
                Rules::All
            },
            store,
            revalidate_after,
            state: Mutex::new(State::default()),
            listing: tokio::sync::Mutex::new(()),
            modules: Mutex::new(HashMap::new()),
            plugins,
            loaded: Mutex::new(HashMap::new()),
            broken: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &dyn FunctionStore {
        self.store.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("catalog lock")
    }

    fn fresh(&self, checked_at: Instant) -> bool {
        checked_at.elapsed() < self.revalidate_after
    }

    /// The current snapshot, after listing the store if the last listing is older than
    /// `REVALIDATE_AFTER`. A listing that fails or outlasts `max_wait` leaves the last snapshot
    /// serving; this fails only if the store has never been listed.
    pub async fn snapshot(&self, max_wait: Duration) -> Result<Arc<Snapshot>, StoreError> {
        let deadline = Instant::now() + max_wait;
        if let Some(snapshot) = self.current_if_fresh() {
            return Ok(snapshot);
        }
        let Ok(_listing) = timeout_at(deadline.into(), self.listing.lock()).await else {
            // Another call is listing and this one's deadline is near: answer from what we have.
            return self.current().ok_or_else(|| self.too_slow(max_wait));
        };
        // The listing just finished by another call may be enough.
        if let Some(snapshot) = self.current_if_fresh() {
            return Ok(snapshot);
        }
        let started = Instant::now();
        let listed = match timeout_at(deadline.into(), self.refresh(started)).await {
            Ok(result) => result,
            Err(_) => Err(self.too_slow(max_wait)),
        };
        let mut state = self.state();
        match listed {
            Ok(()) => state.listed_at = Some(started),
            Err(error) => {
                if state.snapshot.is_none() {
                    return Err(error);
                }
                // Once per interval: the next listing is not due before then.
                state.listed_at = Some(started);
                warn!(%error, "function store unavailable; the last routing table keeps serving");
            }
        }
        Ok(self.rebuild_if_dirty(&mut state))
    }

    /// The snapshot when no listing is due (rebuilt first if records changed since).
    fn current_if_fresh(&self) -> Option<Arc<Snapshot>> {
        let mut state = self.state();
        let listed_at = state.listed_at?;
        state.snapshot.as_ref()?;
        if !self.fresh(listed_at) {
            return None;
        }
        Some(self.rebuild_if_dirty(&mut state))
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        let mut state = self.state();
        state.snapshot.as_ref()?;
        Some(self.rebuild_if_dirty(&mut state))
    }

    fn rebuild_if_dirty(&self, state: &mut State) -> Arc<Snapshot> {
        if let (false, Some(snapshot)) = (state.dirty, &state.snapshot) {
            return Arc::clone(snapshot);
        }
        let mut functions = BTreeMap::new();
        let mut invalid = BTreeMap::new();
        for (name, record) in &state.records {
            match record.serving(self.published) {
                Ok(entry) => {
                    functions.insert(name.clone(), Arc::clone(entry));
                }
                Err(reason) => {
                    invalid.insert(name.clone(), reason.clone());
                }
            }
        }
        let (routes, conflicts) =
            RouteTable::build(functions.values().map(|e| e.manifest.as_ref()));
        // A broken function's valid hooks, consulted only for what no serving function takes.
        let (broken_routes, _) =
            RouteTable::build(invalid.values().filter_map(|i| i.routable.as_deref()));
        for conflict in conflicts {
            warn!(kept = %conflict.kept, dropped = %conflict.dropped, reason = %conflict.reason, "route conflict");
        }
        info!(
            functions = functions.len(),
            invalid = invalid.len(),
            routes = routes.http_routes().count(),
            "catalog updated"
        );
        let snapshot = Arc::new(Snapshot {
            functions,
            invalid,
            routes: Arc::new(routes),
            broken_routes: Arc::new(broken_routes),
        });
        state.snapshot = Some(Arc::clone(&snapshot));
        state.dirty = false;
        snapshot
    }

    fn too_slow(&self, waited: Duration) -> StoreError {
        StoreError::Unavailable {
            location: self.store.describe(),
            reason: format!("no answer within {} ms", waited.as_millis()),
        }
    }

    /// Lists the store and reads every manifest that is new or changed. Each read is kept as it
    /// completes, so a listing cut short by the deadline keeps its progress for the next one.
    async fn refresh(&self, started: Instant) -> Result<(), StoreError> {
        let listed = self.store.list().await?;
        let to_read: Vec<(String, Option<Version>)> = {
            let mut state = self.state();
            let mut to_read = Vec::new();
            for (name, version) in &listed {
                match state.records.get_mut(name) {
                    Some(record) if record.version == *version => {
                        record.checked_at = record.checked_at.max(started);
                    }
                    Some(record) => to_read.push((name.clone(), Some(record.version.clone()))),
                    None => to_read.push((name.clone(), None)),
                }
                state.absent.remove(name);
            }
            to_read
        };
        // Many to read (a cold start): what the store's index holds at the listed version
        // needs no read of its own.
        let to_read = if to_read.len() >= INDEX_WORTH_IT {
            self.apply_index(&listed, to_read).await
        } else {
            to_read
        };
        let mut reads = futures::stream::iter(to_read)
            .map(|(name, known)| async move {
                let read = self.store.read(&name, MANIFEST_FILE, known.as_ref()).await;
                (name, read)
            })
            .buffer_unordered(PARALLEL_READS);
        while let Some((name, read)) = reads.next().await {
            self.apply(&name, read);
        }
        drop(reads);

        // Functions no longer listed are gone, unless read directly since the listing began.
        let mut state = self.state();
        let before = state.records.len();
        state.records.retain(|name, record| {
            record.checked_at >= started || listed.iter().any(|(listed, _)| listed == name)
        });
        if state.records.len() != before {
            state.dirty = true;
        }
        Ok(())
    }

    /// Applies the manifests of the store's index whose version is the listed one; returns the
    /// rest of `to_read`.
    async fn apply_index(
        &self,
        listed: &[(String, Version)],
        to_read: Vec<(String, Option<Version>)>,
    ) -> Vec<(String, Option<Version>)> {
        let Some(index) = self.store.manifest_index().await else {
            return to_read;
        };
        let listed: HashMap<&str, &Version> = listed.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut indexed: HashMap<String, Stored> = index
            .into_iter()
            .filter(|(name, stored)| listed.get(name.as_str()) == Some(&&stored.version))
            .collect();
        let before = to_read.len();
        let rest: Vec<_> = to_read
            .into_iter()
            .filter(|(name, _)| match indexed.remove(name) {
                Some(stored) => {
                    self.apply(name, Ok(Some(stored)));
                    false
                }
                None => true,
            })
            .collect();
        debug!(
            from_index = before - rest.len(),
            to_read = rest.len(),
            "manifest index applied"
        );
        rest
    }

    /// Applies the outcome of reading `name`'s manifest to its record.
    fn apply(&self, name: &str, read: Result<Option<Stored>, StoreError>) {
        let now = Instant::now();
        let mut state = self.state();
        match read {
            // Unchanged since the version we hold (304 / same file).
            Ok(None) => {
                if let Some(record) = state.records.get_mut(name) {
                    record.checked_at = now;
                    record.warned_at = None;
                }
            }
            Ok(Some(stored)) => {
                let file = self.store.locate(name, MANIFEST_FILE);
                let parsed = parse(&stored.bytes, &file, name, self.rules).map(|manifest| {
                    Arc::new(Entry {
                        manifest: Arc::new(manifest),
                        digest: sha256_hex(&stored.bytes),
                    })
                });
                let previous = state.records.remove(name);
                let had_good = previous.as_ref().is_some_and(|r| r.serving(true).is_ok());
                let good = match &parsed {
                    Ok(entry) => {
                        debug!(function = %name, "loaded manifest");
                        Some(Arc::clone(entry))
                    }
                    Err(Invalid { reason, .. }) => {
                        if self.published && had_good {
                            warn!(function = %name, %reason, "new manifest is invalid; the last good version keeps serving");
                        } else {
                            warn!(function = %name, %reason, "function unavailable: invalid manifest");
                        }
                        previous.and_then(|r| r.good)
                    }
                };
                state.records.insert(
                    name.to_string(),
                    Record {
                        version: stored.version,
                        checked_at: now,
                        parsed,
                        good,
                        warned_at: None,
                    },
                );
                state.absent.remove(name);
                state.dirty = true;
            }
            Err(StoreError::NotFound(_)) => {
                if state.records.remove(name).is_some() {
                    info!(function = %name, "function deleted from the store");
                    state.dirty = true;
                }
                if state.absent.len() >= MAX_REMEMBERED {
                    state.absent.clear();
                }
                state.absent.insert(name.to_string(), now);
            }
            Err(error) => {
                let interval = self.revalidate_after;
                if let Some(record) = state.records.get_mut(name) {
                    // Tried again after the interval, not on every call.
                    record.checked_at = now;
                    if record.warned_at.is_none_or(|at| at.elapsed() >= interval) {
                        record.warned_at = Some(now);
                        warn!(function = %name, %error, "function store unavailable; the last version read keeps serving");
                    }
                } else {
                    debug!(function = %name, %error, "manifest unreadable");
                }
            }
        }
    }

    /// The entry `name` serves, revalidating its manifest first if it is older than
    /// `REVALIDATE_AFTER`. The read is bounded by `max_wait`.
    pub async fn entry(&self, name: &str, max_wait: Duration) -> Result<Arc<Entry>, Error> {
        if let Err(reason) = name::check(name) {
            return Err(Error::InvalidRequest(reason));
        }
        let known = {
            let state = self.state();
            match state.records.get(name) {
                Some(record) if self.fresh(record.checked_at) => {
                    return self.serve(name, record);
                }
                Some(record) => Some(record.version.clone()),
                None if state.absent.get(name).is_some_and(|at| self.fresh(*at)) => {
                    return Err(self.not_found(name));
                }
                None => None,
            }
        };
        let read = tokio::time::timeout(
            max_wait,
            self.store.read(name, MANIFEST_FILE, known.as_ref()),
        )
        .await
        .unwrap_or_else(|_| Err(self.too_slow(max_wait)));
        let failure = match &read {
            Err(StoreError::Unavailable { location, reason }) => {
                Some(format!("{location}: {reason}"))
            }
            _ => None,
        };
        self.apply(name, read);
        let state = self.state();
        match (state.records.get(name), failure) {
            (Some(record), _) => self.serve(name, record),
            (None, Some(reason)) => Err(Error::StoreUnavailable {
                function: name.to_string(),
                reason,
            }),
            (None, None) => Err(self.not_found(name)),
        }
    }

    fn serve(&self, name: &str, record: &Record) -> Result<Arc<Entry>, Error> {
        record
            .serving(self.published)
            .map(Arc::clone)
            .map_err(|invalid| Error::ManifestInvalid {
                function: name.to_string(),
                reason: invalid.reason.clone(),
            })
    }

    fn not_found(&self, name: &str) -> Error {
        Error::FunctionNotFound {
            function: name.to_string(),
            store: self.store.describe(),
        }
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
        match self.compile(entry, deadline).await {
            Ok(function) => {
                if self.published {
                    self.loaded
                        .lock()
                        .expect("loaded lock")
                        .insert(name.clone(), Arc::clone(entry));
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
                        self.compile(&good, deadline).await.map_err(|_| error)
                    }
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn compile(
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
        if let Some(error) = self.broken.lock().expect("broken lock").get(&key) {
            return Err(error.clone());
        }
        let module_location = || self.store.locate(&manifest.name, &manifest.module);
        let artifacts = self.plugins.artifacts().cloned();
        // Filled on a miss, for sharing what compiling wrote.
        let before: Mutex<Option<Miss>> = Mutex::new(None);
        let fetch = async {
            let artifact_key = ArtifactKey::new(&module_digest, manifest.fuel.is_some());
            let published = self.published.then_some(artifacts.as_ref()).flatten();
            // A published module never changes: kept locally by digest, fetched once.
            let kept = match fetched {
                Some(_) => None,
                None => published.and_then(|a| a.module(&module_digest)),
            };
            let already_kept = kept.is_some();
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
            // The compiled artifacts from the store, unless they are here already or the store's
            // recent listing shows none. A bundle carries its module: when the listing shows
            // one, it is the only request; when it cannot tell, both are fetched at once.
            let listed = match &artifacts {
                Some(artifacts) if !artifacts.has_compiled(&artifact_key) => self
                    .store
                    .artifact_listed(&artifact_key.to_string(), self.revalidate_after),
                _ => Some(false),
            };
            let module = async {
                match local {
                    Some(bytes) => Some(Ok(bytes)),
                    None if listed == Some(true) => None,
                    None => Some(fetch_checked().await),
                }
            };
            let compiled = async {
                match &artifacts {
                    Some(artifacts) if listed != Some(false) => {
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        let download = artifacts.download(self.store.as_ref(), &artifact_key);
                        tokio::time::timeout(remaining, download)
                            .await
                            .unwrap_or_default()
                    }
                    _ => Downloaded::default(),
                }
            };
            let (bytes, downloaded) = futures::join!(module, compiled);
            let bytes = match bytes {
                Some(bytes) => bytes?,
                // The bundle's module, if it is the one expected; else the module itself.
                None => match downloaded.module {
                    Some(bytes) if sha256_hex(&bytes) == module_digest => bytes,
                    other => {
                        if other.is_some() {
                            warn!(function = %manifest.name, key = %artifact_key, "compiled artifacts carry another module than the manifest names; fetching it");
                        }
                        fetch_checked().await?
                    }
                },
            };
            let downloaded = downloaded.entries;
            if let Some(published) = published.filter(|_| !already_kept) {
                published.keep_module(&module_digest, &bytes);
            }
            if let Some(artifacts) = &artifacts {
                let compiling = artifacts.before_compile();
                *before.lock().expect("listing lock") = Some(Miss {
                    artifact_key,
                    compiling,
                    downloaded,
                    module: bytes.clone(),
                });
            }
            Ok(bytes)
        };
        let mut result = self
            .plugins
            .get_or_compile(key.clone(), Arc::clone(manifest), fetch)
            .await;
        let taken = before.lock().expect("listing lock").take();
        if let (
            Ok((_, loaded)),
            Some(artifacts),
            Some(Miss {
                artifact_key,
                compiling,
                downloaded,
                module,
            }),
        ) = (&mut result, &artifacts, taken)
        {
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
            // Compiled here, even after a download (whose entries then did not fit this engine):
            // shared, so the next cold environment loads.
            if !changed.is_empty() && self.store.keeps_artifacts() {
                let (store, artifacts) = (Arc::clone(&self.store), Arc::clone(artifacts));
                tokio::spawn(async move {
                    artifacts
                        .upload(store.as_ref(), &artifact_key, &changed, &module)
                        .await;
                });
            }
        }
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
        let known = self
            .modules
            .lock()
            .expect("module state lock")
            .get(&manifest.name)
            .filter(|state| state.path == manifest.module)
            .filter(|state| !self.published || state.manifest == entry.digest)
            .cloned();
        if let Some(state) = &known
            && (self.published || self.fresh(state.checked_at))
        {
            return Ok((state.digest.clone(), None));
        }
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

fn parse(bytes: &[u8], file: &str, name: &str, rules: Rules) -> Result<Manifest, Invalid> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        let reason = format!("{file}: manifest: is not UTF-8 text");
        Invalid {
            problems: vec![reason.clone()],
            reason,
            routable: None,
        }
    })?;
    Manifest::parse_with(text, file, Some(name), rules).map_err(|error| Invalid {
        reason: error.to_string(),
        problems: error.lines(),
        routable: error.routable.map(|manifest| Arc::new(*manifest)),
    })
}
