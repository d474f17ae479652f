//! `wasm-lambda publish`: uploads functions to an S3 store, with a progress bar on a terminal and
//! a line per function otherwise.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cache::PluginCache;
use crate::catalog::Catalog;
use crate::invoke::{CompileOptions, CompiledFunction};
use crate::manifest::Manifest;
use crate::publish::{LocalFunction, Target};
use crate::router::RouteTable;
use crate::store::{S3Store, client_from_env};

/// Uploads concurrently; each function's module still precedes its manifest.
const PARALLEL_UPLOADS: usize = 16;

/// Writes a line to stdout. A reader that went away (`publish ... | head -1`) never stops a
/// publish midway: what cannot be printed is dropped, and the publish carries on to the end.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Like `say!`, to stderr.
macro_rules! warn_user {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Exits 0 when every function was published, 1 when any failed, 2 on bad input.
pub async fn publish(
    bucket: String,
    mut prefix: String,
    prune: bool,
    allow_route_conflicts: bool,
    dirs: Vec<PathBuf>,
) -> ExitCode {
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let functions = match crate::publish::discover(&dirs) {
        Ok(functions) => functions,
        Err(problems) => {
            for problem in problems {
                warn_user!("error: {problem}");
            }
            warn_user!("nothing was published");
            return ExitCode::from(2);
        }
    };
    let target = Target { bucket, prefix };
    let client = client_from_env().await;
    // What `validate` refuses is refused here, before anything is uploaded: every module
    // compiles and exports its entrypoints, and no route is already another function's.
    let mut problems = check_modules(&functions).await;
    let store = S3Store::new(client.clone(), &target.bucket, &target.prefix);
    match route_conflicts(&functions, store).await {
        Ok(conflicts) if allow_route_conflicts => {
            for conflict in conflicts {
                warn_user!("warning: {conflict} (published anyway: --allow-route-conflicts)");
            }
        }
        Ok(conflicts) => problems.extend(
            conflicts
                .into_iter()
                .map(|conflict| format!("{conflict} (--allow-route-conflicts publishes anyway)")),
        ),
        Err(error) => problems.push(format!("the published functions cannot be read: {error}")),
    }
    if !problems.is_empty() {
        for problem in problems {
            warn_user!("error: {problem}");
        }
        warn_user!("nothing was published");
        return ExitCode::FAILURE;
    }
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(functions.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut results = futures::stream::iter(&functions)
        .map(|function| target.publish(&client, function))
        .buffer_unordered(PARALLEL_UPLOADS);
    let mut failed = 0;
    while let Some(result) = results.next().await {
        let line = match &result {
            Ok(published) => format!(
                "published {} ({}.wasm, module {})",
                published.name,
                &published.digest[..12],
                if published.uploaded {
                    "uploaded"
                } else {
                    "already present"
                }
            ),
            Err(error) => {
                failed += 1;
                format!("error: {error}")
            }
        };
        match &progress {
            Some(bar) => {
                bar.println(&line);
                bar.inc(1);
            }
            None if result.is_ok() => say!("{line}"),
            None => warn_user!("{line}"),
        }
    }
    drop(results);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if failed > 0 {
        warn_user!(
            "{failed} of {} functions failed to publish",
            functions.len()
        );
        return ExitCode::FAILURE;
    }
    if prune {
        match target.prune(&client).await {
            Ok(deleted) => {
                for key in deleted {
                    say!("pruned s3://{}/{key}", target.bucket);
                }
            }
            Err(error) => {
                warn_user!("error: prune: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    // The functions are published either way; without a current index a cold bootstrap reads
    // each manifest itself.
    match target.write_index(&client).await {
        Ok(count) => say!("indexed {count} manifests"),
        Err(error) => warn_user!("warning: manifest index not written: {error}"),
    }
    ExitCode::SUCCESS
}

/// Compiles each function's module with its manifest, as the bootstrap would: the problems.
async fn check_modules(functions: &[LocalFunction]) -> Vec<String> {
    let mut problems = Vec::new();
    for function in functions {
        let manifest = Arc::new(function.manifest.clone());
        let path = function.dir.join(&function.manifest.module);
        let module = match std::fs::read(&path) {
            Ok(bytes) => Bytes::from(bytes),
            Err(error) => {
                problems.push(format!("{}: {error}", path.display()));
                continue;
            }
        };
        let compiled = tokio::task::spawn_blocking(move || {
            CompiledFunction::compile(manifest, module, CompileOptions::default()).map(|_| ())
        })
        .await;
        match compiled {
            Ok(Ok(())) => {}
            Ok(Err(error)) => problems.push(format!("{}: {}", path.display(), error.reason())),
            Err(panic) => problems.push(format!("{}: compiling panicked: {panic}", path.display())),
        }
    }
    problems
}

/// The routes of `functions` that a function already published (and not published again now)
/// serves, or that they claim among themselves.
async fn route_conflicts(
    functions: &[LocalFunction],
    store: S3Store,
) -> Result<Vec<String>, String> {
    let catalog = Catalog::new(
        Arc::new(store),
        Duration::ZERO,
        PluginCache::new(0, CompileOptions::default()),
    );
    let snapshot = catalog
        .snapshot(Duration::from_secs(60))
        .await
        .map_err(|error| error.to_string())?;
    let local: BTreeMap<&str, &Manifest> = functions
        .iter()
        .map(|function| (function.manifest.name.as_str(), &function.manifest))
        .collect();
    let mut all: BTreeMap<&str, &Manifest> = snapshot
        .functions
        .iter()
        .map(|(name, entry)| (name.as_str(), entry.manifest.as_ref()))
        .collect();
    all.extend(local.iter().map(|(name, manifest)| (*name, *manifest)));
    let (_, conflicts) = RouteTable::build(all.into_values());
    let owner = |route: &str| route.rsplit(" -> ").next().unwrap_or_default().to_string();
    Ok(conflicts
        .into_iter()
        .filter(|c| {
            local.contains_key(owner(&c.kept).as_str())
                || local.contains_key(owner(&c.dropped).as_str())
        })
        .map(|c| {
            format!(
                "route {} conflicts with {} ({})",
                c.dropped, c.kept, c.reason
            )
        })
        .collect())
}
