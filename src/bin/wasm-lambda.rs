//! `wasm-lambda`: the developer CLI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wasm_lambda::cache::PluginCache;
use wasm_lambda::catalog::Catalog;
use wasm_lambda::invoke::CompileOptions;
use wasm_lambda::store::DirStore;

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { dir } => validate(dir).await,
    }
}

/// Prints one line per function; exits 1 if any is unavailable.
async fn validate(dir: PathBuf) -> ExitCode {
    let catalog = Catalog::new(
        Arc::new(DirStore::new(&dir)),
        Duration::ZERO,
        PluginCache::new(u64::MAX, CompileOptions::default()),
    );
    let snapshot = match catalog.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    for (name, (_, reason)) in &snapshot.invalid {
        eprintln!("{name}: {reason}");
        failed = true;
    }
    for (name, entry) in &snapshot.functions {
        match catalog.compiled(entry).await {
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
