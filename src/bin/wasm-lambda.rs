//! `wasm-lambda`: the developer CLI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use wasm_lambda::cache::PluginCache;
use wasm_lambda::catalog::Catalog;
use wasm_lambda::invoke::CompileOptions;
use wasm_lambda::publish::Target;
use wasm_lambda::store::{DirStore, client_from_env};

#[derive(Parser)]
#[command(version, about = "Develop WebAssembly functions for wasm-lambda")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every manifest in a function directory and that each module exists and compiles.
    Validate {
        /// The function store directory.
        #[arg(default_value = "functions")]
        dir: PathBuf,
    },
    /// Publish functions to an S3 store: each module content-addressed first, then its manifest.
    Publish {
        /// The functions bucket.
        #[arg(long, env = "FUNCTIONS_BUCKET")]
        bucket: String,
        /// Key prefix inside the bucket (`prod/`).
        #[arg(long, env = "FUNCTIONS_PREFIX", default_value = "")]
        prefix: String,
        /// Afterwards, delete modules that no manifest in the store references.
        #[arg(long)]
        prune: bool,
        /// Function directories, or store roots holding them.
        #[arg(default_values = ["functions"])]
        dirs: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { dir } => validate(dir).await,
        Command::Publish {
            bucket,
            prefix,
            prune,
            dirs,
        } => publish(bucket, prefix, prune, dirs).await,
    }
}

/// Prints one line per function; exits 1 if any is unavailable.
async fn validate(dir: PathBuf) -> ExitCode {
    let catalog = Catalog::new(
        Arc::new(DirStore::new(&dir)),
        Duration::ZERO,
        PluginCache::new(u64::MAX, CompileOptions::default()),
    );
    let snapshot = match catalog.snapshot(Duration::from_secs(60)).await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    for (name, reason) in &snapshot.invalid {
        eprintln!("{name}: {reason}");
        failed = true;
    }
    for (name, entry) in &snapshot.functions {
        match catalog.compiled(entry, Duration::from_secs(60)).await {
            Ok(_) => println!("{name}: ok"),
            Err(error) => {
                eprintln!("{name}: {error}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Uploads concurrently; each function's module still precedes its manifest.
const PARALLEL_UPLOADS: usize = 16;

/// Exits 0 when every function was published, 1 when any failed, 2 on bad input.
async fn publish(bucket: String, mut prefix: String, prune: bool, dirs: Vec<PathBuf>) -> ExitCode {
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let functions = match wasm_lambda::publish::discover(&dirs) {
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
    ExitCode::SUCCESS
}
