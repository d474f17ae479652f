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

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::time::timeout_at;
use tracing::{debug, info, warn};

use crate::error::Error;
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
    pub digest: String,
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

/// The manifests of the store, and the routing table built from them. One per process.
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
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
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

impl Catalog {
    pub fn new(store: Arc<dyn FunctionStore>, revalidate_after: Duration) -> Catalog {
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
        }
    }

    pub fn store(&self) -> &dyn FunctionStore {
        self.store.as_ref()
    }

    /// The store, shared (for the loader).
    pub fn shared_store(&self) -> Arc<dyn FunctionStore> {
        Arc::clone(&self.store)
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
