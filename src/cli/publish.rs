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

use crate::artifacts::CompileTarget;
use crate::catalog::Catalog;
use crate::config::{DEFAULT_S3_REVALIDATE_AFTER, ENV_REVALIDATE_AFTER};
use crate::invoke::{CompileOptions, CompiledFunction};
use crate::manifest::Manifest;
use crate::publish::{Artifact, LocalFunction, Target};
use crate::router::RouteTable;
use crate::store::{ARTIFACTS_DIR, S3Store, client_from_env};
use crate::units::parse_duration;

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

/// Exits 0 when every function was published, 1 when any failed, 2 on bad input. `prune`:
/// afterwards, prune with this keep window (`None` inside: the default).
pub async fn publish(
    target: Target,
    prune: Option<Option<Duration>>,
    allow_route_conflicts: bool,
    targets: &[CompileTarget],
    dirs: Vec<PathBuf>,
) -> ExitCode {
    let prune = match prune.map(keep_window).transpose() {
        Ok(prune) => prune,
        Err(error) => {
            warn_user!("error: {error}");
            return ExitCode::from(2);
        }
    };
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
        .map(|function| target.publish(&client, function, targets))
        .buffer_unordered(PARALLEL_UPLOADS);
    let mut failed = 0;
    while let Some(result) = results.next().await {
        let line = match &result {
            Ok(published) => format!(
                "published {} ({}.wasm, module {}{})",
                published.name,
                &published.digest[..12],
                if published.uploaded {
                    "uploaded"
                } else {
                    "already present"
                },
                published
                    .compiled
                    .iter()
                    .map(|(target, artifact)| match artifact {
                        Artifact::Compiled => format!(", compiled for {target}"),
                        Artifact::Present => format!(", {target} artifacts already present"),
                        Artifact::Refused(reason) => format!(
                            ", {target} artifacts not taken by the bucket ({reason}; only the \
                             bootstrap's role and ArtifactPublisherArn may write \
                             {ARTIFACTS_DIR}/): environments compile it"
                        ),
                        Artifact::Failed(reason) => format!(
                            ", {target} artifacts not made ({reason}): environments compile it"
                        ),
                    })
                    .collect::<String>()
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
    if let Some(keep) = prune
        && !pruned(&target, &client, keep).await
    {
        return ExitCode::FAILURE;
    }
    // The functions are published either way; without a current index a cold bootstrap reads
    // each manifest itself.
    match target.write_index(&client).await {
        Ok(count) => say!("indexed {count} manifests"),
        Err(error) => warn_user!("warning: manifest index not written: {error}"),
    }
    ExitCode::SUCCESS
}

/// The keep window of a prune: `keep`, else `REVALIDATE_AFTER` (how long an environment trusts
/// a manifest it read), else its default for S3.
fn keep_window(keep: Option<Duration>) -> Result<Duration, String> {
    if let Some(keep) = keep {
        return Ok(keep);
    }
    match std::env::var(ENV_REVALIDATE_AFTER) {
        Ok(value) => parse_duration(&value)
            .map_err(|reason| format!("{ENV_REVALIDATE_AFTER}={value:?} is invalid: {reason}")),
        Err(_) => Ok(DEFAULT_S3_REVALIDATE_AFTER),
    }
}

/// Prunes `target`, saying what went: whether it all went well.
async fn pruned(target: &Target, client: &aws_sdk_s3::Client, keep: Duration) -> bool {
    match target.prune(client, keep).await {
        Ok(deleted) => {
            for key in &deleted {
                say!("pruned s3://{}/{key}", target.bucket);
            }
            say!(
                "pruned {} objects, keeping every version current within {}",
                deleted.len(),
                humantime::format_duration(keep)
            );
            true
        }
        Err(error) => {
            warn_user!("error: prune: {error}");
            false
        }
    }
}

/// `wasm-lambda prune`: 0 when done, 1 when the store failed.
pub async fn prune(target: Target, keep: Option<Duration>) -> ExitCode {
    let keep = match keep_window(keep) {
        Ok(keep) => keep,
        Err(error) => {
            warn_user!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let client = client_from_env().await;
    if !pruned(&target, &client, keep).await {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `wasm-lambda versions NAME`: one line per version, oldest first, the current one marked.
pub async fn versions(target: Target, name: &str) -> ExitCode {
    let client = client_from_env().await;
    let versions = match target.versions(&client, name).await {
        Ok(versions) => versions,
        Err(error) => {
            warn_user!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if versions.is_empty() {
        warn_user!(
            "error: {name}: no versions are recorded in s3://{}/{} (publish it first)",
            target.bucket,
            target.prefix
        );
        return ExitCode::FAILURE;
    }
    say!("{:<36}{:<14}", "VERSION", "MODULE");
    for version in &versions {
        say!(
            "{:<36}{:<14}{}",
            version.id,
            version.short_module(),
            if version.current { "current" } else { "" }
        );
    }
    ExitCode::SUCCESS
}

/// `wasm-lambda rollback NAME [VERSION]`.
pub async fn rollback(target: Target, name: &str, version: Option<&str>) -> ExitCode {
    let client = client_from_env().await;
    match target.rollback(&client, name, version).await {
        Ok(restored) => say!(
            "rolled {name} back to {} (module {}); environments switch within REVALIDATE_AFTER",
            restored.id,
            restored.short_module()
        ),
        Err(error) => {
            warn_user!("error: {error}");
            return ExitCode::FAILURE;
        }
    }
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
            CompiledFunction::compile(manifest, module, None, CompileOptions::default()).map(|_| ())
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
    let catalog = Catalog::new(Arc::new(store), Duration::ZERO);
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
