//! `wasm-lambda`: the developer CLI. The commands' work is in `wasm_lambda::cli`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use wasm_lambda::artifacts::CompileTarget;
use wasm_lambda::cli::{self, Invocation};
use wasm_lambda::parse_duration;
use wasm_lambda::publish::Target;
use wasm_lambda::{Config, StoreLocation};

const EXIT_CODES: &str = "Exit codes: 0 success; 1 the command ran and found problems or failed; \
                          2 bad usage, or input that could not be read.";

#[derive(Parser)]
#[command(
    version,
    about = "Develop, check and publish WebAssembly functions for wasm-lambda",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a function directory: every manifest, module, entrypoint, route, and every hook
    /// against the SAM template. Reports all problems at once.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// The function directory.
        #[arg(default_value = "functions")]
        dir: PathBuf,
        /// The SAM template whose event sources must deliver the hooks [default: template.yaml,
        /// when it exists].
        #[arg(long)]
        template: Option<PathBuf>,
        /// Do not check hooks against a template.
        #[arg(long, conflicts_with = "template")]
        no_template: bool,
    },
    /// Build every function (each manifest's `build`) and check its output exists; with
    /// --watch, rebuild a function whenever a file matching its `watch` globs changes.
    #[command(after_help = EXIT_CODES)]
    Build {
        /// A function directory, or a directory of them.
        #[arg(default_value = "functions")]
        dir: PathBuf,
        /// Keep running and rebuild on changes.
        #[arg(long)]
        watch: bool,
    },
    /// Run a function locally, on the same code path as the bootstrap, without Lambda. Prints the
    /// answer on stdout and the logs on stderr.
    #[command(after_help = EXIT_CODES)]
    Invoke {
        /// The function.
        name: String,
        /// Invoke it directly with this JSON input.
        #[arg(long, conflicts_with = "event")]
        input: Option<String>,
        /// Send it this event file (API Gateway, SQS, S3, ...), routed as in Lambda.
        #[arg(long)]
        event: Option<PathBuf>,
        /// The function directory.
        #[arg(long, env = "FUNCTIONS_DIR", default_value = "functions")]
        dir: PathBuf,
        /// Run it from this S3 functions bucket instead (as published; AWS credentials and
        /// region from the environment, `AWS_ENDPOINT_URL` for an S3-compatible server).
        #[arg(long)]
        bucket: Option<String>,
        /// Key prefix inside the bucket (`prod/`); with `--bucket`.
        #[arg(long, requires = "bucket", default_value = "")]
        prefix: String,
        /// The Lambda timeout to run with.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Print the routing table: each hook, what it matches, its function and entrypoint.
    #[command(after_help = EXIT_CODES)]
    Routes {
        /// The function directory.
        #[arg(default_value = "functions")]
        dir: PathBuf,
    },
    /// Create a Rust function crate with its manifest, ready to build and validate.
    #[command(after_help = EXIT_CODES)]
    New {
        /// The function's name.
        name: String,
        /// Where to create it.
        #[arg(long, default_value = "functions")]
        dir: PathBuf,
    },
    /// Publish functions to an S3 store: each module content-addressed first, then its manifest;
    /// each version is recorded (see `versions`, `rollback`).
    #[command(after_help = EXIT_CODES)]
    Publish {
        #[command(flatten)]
        store: BucketArgs,
        /// Afterwards, prune the store as `prune` does.
        #[arg(long)]
        prune: bool,
        /// With --prune: keep every version current within this window [default:
        /// REVALIDATE_AFTER, else 30s].
        #[arg(long, requires = "prune", value_parser = parse_duration)]
        keep: Option<Duration>,
        /// Publish even when a route is already served by another published function (the
        /// conflict is reported as a warning; the router keeps one of the two).
        #[arg(long)]
        allow_route_conflicts: bool,
        /// Compile each module for this engine and upload its artifacts, so that a cold
        /// environment loads them instead of compiling: `aarch64-unknown-linux-gnu` (Lambda's
        /// arm64, every Graviton) or `host` (this machine: local runs, tests, x86 deployments).
        /// Repeatable [default: aarch64-unknown-linux-gnu].
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<CompileTarget>,
        /// Function directories, or store roots holding them.
        #[arg(default_values = ["functions"])]
        dirs: Vec<PathBuf>,
    },
    /// Delete the versions, modules and compiled bundles of an S3 store that no environment can
    /// still need: every function keeps its current version and each one current within --keep.
    #[command(after_help = EXIT_CODES)]
    Prune {
        #[command(flatten)]
        store: BucketArgs,
        /// Keep every version current within this window [default: REVALIDATE_AFTER, else 30s].
        #[arg(long, value_parser = parse_duration)]
        keep: Option<Duration>,
    },
    /// List a function's published versions, oldest first, with when each was published and
    /// its module.
    #[command(after_help = EXIT_CODES)]
    Versions {
        /// The function.
        name: String,
        #[command(flatten)]
        store: BucketArgs,
    },
    /// Print the IAM policy the bootstrap's role needs for the functions' grants (least
    /// privilege: by bucket and prefix, key-value namespace, queue, topic and secret).
    #[command(after_help = EXIT_CODES)]
    Policy {
        /// The function directory.
        #[arg(default_value = "functions")]
        dir: PathBuf,
    },
    /// On a local AWS-compatible server (AWS_ENDPOINT_URL), create what the functions' grants
    /// and hooks name: buckets, the key-value table, queues, topics, secrets (placeholders).
    #[command(after_help = EXIT_CODES)]
    Provision {
        /// The function directory.
        #[arg(default_value = "functions")]
        dir: PathBuf,
    },
    /// Make an earlier version of a function current again (environments switch within
    /// REVALIDATE_AFTER).
    #[command(after_help = EXIT_CODES)]
    Rollback {
        /// The function.
        name: String,
        /// A version id from `versions` (or a unique start of one), or the start of its module
        /// digest [default: the newest version unlike the current one].
        version: Option<String>,
        #[command(flatten)]
        store: BucketArgs,
    },
}

/// An S3 function store.
#[derive(clap::Args)]
struct BucketArgs {
    /// The functions bucket.
    #[arg(long, env = "FUNCTIONS_BUCKET")]
    bucket: String,
    /// Key prefix inside the bucket (`prod/`).
    #[arg(long, env = "FUNCTIONS_PREFIX", default_value = "")]
    prefix: String,
}

impl BucketArgs {
    fn target(self) -> Target {
        Target::new(self.bucket, self.prefix)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate {
            dir,
            template,
            no_template,
        } => {
            let template = match (template, no_template) {
                (_, true) => None,
                (Some(template), _) => Some(template),
                (None, _) => Some(PathBuf::from("template.yaml")).filter(|t| t.is_file()),
            };
            validate(&dir, template.as_deref()).await
        }
        Command::Build { dir, watch } if watch => finish(cli::build::watch(&dir).map(|()| true)),
        Command::Build { dir, .. } => finish(cli::build::build_all(&dir)),
        Command::Invoke {
            name,
            input,
            event,
            dir,
            bucket,
            prefix,
            timeout,
        } => {
            let store = match bucket {
                Some(bucket) => {
                    let Target { bucket, prefix, .. } = Target::new(bucket, prefix);
                    StoreLocation::S3 { bucket, prefix }
                }
                None => StoreLocation::Directory(dir),
            };
            invoke(&name, input, event, store, timeout).await
        }
        Command::Routes { dir } => routes(&dir).await,
        Command::New { name, dir } => match cli::scaffold::new_function(&dir, &name) {
            Ok(root) => {
                println!(
                    "created {}\nnext: wasm-lambda build {0} && wasm-lambda validate {}",
                    root.display(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => usage_error(&error),
        },
        Command::Publish {
            store,
            prune,
            keep,
            allow_route_conflicts,
            targets,
            dirs,
        } => {
            let prune = prune.then_some(keep);
            let targets = match targets.is_empty() {
                true => CompileTarget::DEFAULT.to_vec(),
                false => targets,
            };
            cli::publish::publish(store.target(), prune, allow_route_conflicts, &targets, dirs)
                .await
        }
        Command::Prune { store, keep } => cli::publish::prune(store.target(), keep).await,
        Command::Versions { name, store } => cli::publish::versions(store.target(), &name).await,
        Command::Policy { dir } => match cli::resources::needs(&dir) {
            Ok(needs) => {
                let policy = cli::resources::policy(
                    &needs,
                    &cli::resources::resource_names(),
                    &cli::resources::kv_table(),
                );
                println!(
                    "{}",
                    serde_json::to_string_pretty(&policy).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for problem in &problems {
                    eprintln!("error: {problem}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Provision { dir } => match cli::provision::provision(&dir).await {
            Ok(done) => {
                for line in done {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for problem in &problems {
                    eprintln!("error: {problem}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Rollback {
            name,
            version,
            store,
        } => cli::publish::rollback(store.target(), &name, version.as_deref()).await,
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// 0 when `outcome` says all went well, 1 when not, 2 when the input could not be read.
fn finish(outcome: Result<bool, String>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => usage_error(&error),
    }
}

/// Prints `<function>: ok` on stdout or `<function>: <problem>` on stderr, one line each.
async fn validate(dir: &Path, template: Option<&Path>) -> ExitCode {
    let report = match cli::validate::validate(dir, template).await {
        Ok(report) => report,
        Err(error) => return usage_error(&error),
    };
    for (name, problems) in &report.functions {
        if problems.is_empty() {
            println!("{name}: ok");
        }
        for problem in problems {
            eprintln!("{name}: {problem}");
        }
    }
    finish(Ok(report.ok()))
}

async fn routes(dir: &Path) -> ExitCode {
    match cli::routes(dir).await {
        Ok((table, problems)) => {
            print!("{table}");
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            finish(Ok(problems.is_empty()))
        }
        Err(error) => usage_error(&error),
    }
}

async fn invoke(
    name: &str,
    input: Option<String>,
    event: Option<PathBuf>,
    store: StoreLocation,
    timeout: Duration,
) -> ExitCode {
    // The answer goes to stdout; logs, as the bootstrap writes them, to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    let invocation = match (input, event) {
        (_, Some(file)) => match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        {
            Ok(event) => Invocation::Event(event),
            Err(error) => return usage_error(&format!("{}: {error}", file.display())),
        },
        (Some(input), None) => match serde_json::from_str(&input) {
            Ok(input) => Invocation::Input(input),
            Err(error) => {
                return usage_error(&format!(
                    "--input is not JSON ({error}); quote text as JSON: --input '\"text\"'"
                ));
            }
        },
        (None, None) => Invocation::Input(Value::Null),
    };
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return usage_error(&error.to_string()),
    };
    if let StoreLocation::Directory(dir) = &store
        && !dir.is_dir()
    {
        return usage_error(&format!("--dir {}: not a directory", dir.display()));
    }
    config.store = store;
    match cli::invoke(config, name, invocation, timeout).await {
        Ok((answer, ok)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            finish(Ok(ok))
        }
        Err(error) => usage_error(&error),
    }
}
