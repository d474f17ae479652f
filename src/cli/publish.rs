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
                eprintln!("error: {problem}");
            }
            eprintln!("nothing was published");
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
            None if result.is_ok() => println!("{line}"),
            None => eprintln!("{line}"),
        }
    }
    drop(results);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} functions failed to publish",
            functions.len()
        );
        return ExitCode::FAILURE;
    }
    if prune {
        match target.prune(&client).await {
            Ok(deleted) => {
                for key in deleted {
                    println!("pruned s3://{}/{key}", target.bucket);
                }
            }
            Err(error) => {
                eprintln!("error: prune: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    // The functions are published either way; without a current index a cold bootstrap reads
    // each manifest itself.
    match target.write_index(&client).await {
        Ok(count) => println!("indexed {count} manifests"),
        Err(error) => eprintln!("warning: manifest index not written: {error}"),
    }
    ExitCode::SUCCESS
}
