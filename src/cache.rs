//! The compiled-plugin cache: `moka`, keyed by function, module digest and manifest digest,
//! weighed by estimated bytes and bounded by `CACHE_MAX_BYTES`.
//!
//! Concurrent misses for one key run one loader; the others wait for its result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use moka::future::Cache;
use tracing::{Instrument, info_span};

use crate::error::Error;
use crate::invoke::{CompileOptions, CompiledFunction};
use crate::manifest::Manifest;

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
    options: CompileOptions,
    /// The newest key of each function: older versions are dropped once a new one serves.
    newest: Arc<Mutex<HashMap<String, PluginKey>>>,
}

impl PluginCache {
    pub fn new(max_bytes: u64, options: CompileOptions) -> PluginCache {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key, function: &Arc<CompiledFunction>| function.weight)
            .build();
        PluginCache {
            cache,
            options,
            newest: Arc::default(),
        }
    }

    /// The compiled function for `key`, compiling it from the module `fetch` returns on a miss.
    pub async fn get_or_compile<F>(
        &self,
        key: PluginKey,
        manifest: Arc<Manifest>,
        fetch: F,
    ) -> Result<Arc<CompiledFunction>, Error>
    where
        F: Future<Output = Result<Bytes, Error>> + Send,
    {
        let options = self.options.clone();
        let function_name = key.function.clone();
        let span = info_span!("compile", function = %key.function);
        let compiled = self
            .cache
            .try_get_with(
                key.clone(),
                async move {
                    let started = Instant::now();
                    let module = fetch.await?;
                    tracing::debug!(
                        fetch_ms = started.elapsed().as_millis() as u64,
                        "module fetched"
                    );
                    let function = tokio::task::spawn_blocking(move || {
                        CompiledFunction::compile(manifest, module, options)
                    })
                    .await
                    .map_err(|panic| Error::ModuleInvalid {
                        function: function_name,
                        reason: format!("compiling panicked: {panic}"),
                    })??;
                    Ok::<_, Error>(Arc::new(function))
                }
                .instrument(span),
            )
            .await
            .map_err(|error: Arc<Error>| (*error).clone())?;
        let replaced = {
            let mut newest = self.newest.lock().expect("newest keys lock");
            match newest.get(&key.function) {
                Some(current) if *current == key => None,
                _ => newest.insert(key.function.clone(), key),
            }
        };
        if let Some(old) = replaced {
            // Calls still running on the old version hold their own reference and finish on it.
            self.cache.invalidate(&old).await;
        }
        Ok(compiled)
    }
}
