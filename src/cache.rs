//! The compiled-plugin cache: `moka`, keyed by function, module digest and manifest digest,
//! weighed by estimated bytes and bounded by `CACHE_MAX_BYTES`.
//!
//! Concurrent misses for one key run one loader; the others wait for its result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use moka::future::Cache;
use tracing::{Instrument, info_span};

use crate::error::Error;
use crate::invoke::{CompiledFunction, Loaded};

/// What a compiled plugin depends on: a new module or a new manifest is a new entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginKey {
    pub function: String,
    /// SHA-256 of the module.
    pub module: String,
    /// SHA-256 of the manifest text (config, limits and hooks are compiled in).
    pub manifest: String,
}

/// Compiled functions, shared by every invocation of the process. Cloning shares the cache.
#[derive(Clone)]
pub struct PluginCache {
    cache: Cache<PluginKey, Arc<CompiledFunction>>,
    /// `CACHE_MAX_BYTES`: a function heavier than the whole cache is refused.
    max_bytes: u64,
    /// The newest key of each function: older versions are dropped once a new one serves.
    newest: Arc<Mutex<HashMap<String, PluginKey>>>,
    /// Set when entries were evicted: the memory they freed is handed back to the system at
    /// the next miss, so the cap bounds the process's memory and not only the cache's.
    evicted: Arc<AtomicBool>,
}

impl PluginCache {
    pub fn new(max_bytes: u64) -> PluginCache {
        let evicted = Arc::new(AtomicBool::new(false));
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key, function: &Arc<CompiledFunction>| function.weight)
            .eviction_listener({
                let evicted = Arc::clone(&evicted);
                move |_key, _function, _cause| evicted.store(true, Ordering::Relaxed)
            })
            .build();
        PluginCache {
            cache,
            max_bytes,
            newest: Arc::default(),
            evicted,
        }
    }

    /// The compiled function for `key` if the cache holds it: the warm path, with no miss to
    /// build and nothing to report. A hit leaves the newest versions as they are: a key found
    /// that is not its function's newest was found in a race with the newer one's insert.
    pub async fn get(&self, key: &PluginKey) -> Option<Arc<CompiledFunction>> {
        self.cache.get(key).await
    }

    /// The compiled function for `key`, from `miss` when the cache does not hold it (the loader
    /// fetches and compiles), and whether this call loaded it (a miss) or found it.
    pub async fn get_or_insert<F>(
        &self,
        key: PluginKey,
        miss: F,
    ) -> Result<(Arc<CompiledFunction>, Loaded), Error>
    where
        F: Future<Output = Result<CompiledFunction, Error>> + Send,
    {
        let max_bytes = self.max_bytes;
        let span = info_span!("compile", function = %key.function);
        let entry = self
            .cache
            .entry(key.clone())
            .or_try_insert_with(
                async move {
                    let function = miss.await?;
                    if u64::from(function.weight) > max_bytes {
                        return Err(Error::ModuleInvalid {
                            function: function.name().to_string(),
                            reason: format!(
                                "compiled, it holds about {}, more than the plugin cache may \
                                 hold (CACHE_MAX_BYTES = {})",
                                bytesize::ByteSize(u64::from(function.weight))
                                    .display()
                                    .iec(),
                                bytesize::ByteSize(max_bytes).display().iec()
                            ),
                        });
                    }
                    Ok::<_, Error>(Arc::new(function))
                }
                .instrument(span),
            )
            .await
            .map_err(|error: Arc<Error>| (*error).clone())?;
        // Only the call that loaded the function reports its loading.
        let fresh = entry.is_fresh();
        let compiled = entry.into_value();
        let loaded = if fresh {
            compiled.loaded
        } else {
            Loaded::default()
        };
        if fresh && self.evicted.swap(false, Ordering::Relaxed) {
            tokio::task::spawn_blocking(release_freed_memory);
        }
        self.serving(&key).await;
        Ok((compiled, loaded))
    }

    /// Notes `key` as its function's newest version, dropping the one it replaces.
    async fn serving(&self, key: &PluginKey) {
        let replaced = {
            let mut newest = self.newest.lock().expect("newest keys lock");
            match newest.get(&key.function) {
                Some(current) if current == key => None,
                _ => newest.insert(key.function.clone(), key.clone()),
            }
        };
        if let Some(old) = replaced {
            // Calls still running on the old version hold their own reference and finish on it.
            self.cache.invalidate(&old).await;
        }
    }
}

/// Fixes glibc's threshold for mapping an allocation on its own at 128 KiB. Left to itself,
/// glibc raises it to the largest such block freed so far: after the first load, a load's large
/// transient buffers (the compile cache entry read and decompressed, the compiler's tables)
/// come from the heaps instead, where the small allocations each loaded function keeps pin
/// their pages once freed. Measured with 100 functions of 175 KB loaded: 1,290 KiB of RSS per
/// function with glibc's default, 918 KiB with this; `malloc_trim` afterwards won back only 90
/// KiB of the difference. Call it first thing, before any thread allocates.
pub fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt changes a setting of the allocator under its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Returns the heap memory freed by evicted functions to the system. glibc keeps what is freed
/// in its per-thread arenas, where a process that compiled a hundred functions would hold on to
/// their memory long after the cache let them go.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the system;
    // it takes the allocator's locks and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
