//! `wasm-lambda publish`: uploads functions to an S3 store, with a progress bar on a terminal and
//! a line per function otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::publish::Target;
use crate::store::client_from_env;

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
