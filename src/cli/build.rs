//! `wasm-lambda build [DIR] [--watch]`: runs each manifest's `build` and checks its output exists;
//! with `--watch`, rebuilds a function whenever a file matching its `watch` globs changes.
//!
//! With the bootstrap serving the same directory (`make run`), a rebuilt module is served from the
//! next invocation on: nothing restarts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};

use crate::manifest::{Build, MANIFEST_FILE};
use crate::store::{function_dirs, read_manifest};

/// Changes closer together than this are one change (an editor's save is several events).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A function with a `build` section.
#[derive(Debug, Clone)]
pub struct Buildable {
    pub name: String,
    pub dir: PathBuf,
    pub build: Build,
    /// Where the module must be once built, relative to `dir`.
    pub output: String,
    watch: GlobSet,
}

/// The functions under `root` (a function directory or a directory of them) that have a `build`
/// section, and the problems found: manifests that do not parse.
pub fn discover(root: &Path) -> Result<(Vec<Buildable>, Vec<String>), String> {
    let mut functions = Vec::new();
    let mut problems = Vec::new();
    for dir in function_dirs(root)? {
        let file = dir.join(MANIFEST_FILE);
        let manifest = match read_manifest(&dir) {
            Ok((manifest, _)) => manifest,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let Some(build) = manifest.build.clone() else {
            continue;
        };
        let mut watch = GlobSetBuilder::new();
        for pattern in &build.watch {
            match Glob::new(pattern) {
                Ok(glob) => {
                    watch.add(glob);
                }
                Err(error) => problems.push(format!(
                    "{}: build.watch: `{pattern}`: {error}",
                    file.display()
                )),
            }
        }
        functions.push(Buildable {
            name: manifest.name.clone(),
            output: build.output.clone().unwrap_or(manifest.module.clone()),
            watch: watch.build().unwrap_or_else(|_| GlobSet::empty()),
            dir,
            build,
        });
    }
    Ok((functions, problems))
}

impl Buildable {
    /// Runs the build command in the function's directory; its output goes to this process's.
    pub fn run(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let status = Command::new(&self.build.command)
            .args(&self.build.args)
            .current_dir(&self.dir)
            .status()
            .map_err(|error| {
                format!(
                    "{}: cannot run `{}`: {error}",
                    self.name, self.build.command
                )
            })?;
        if !status.success() {
            return Err(format!(
                "{}: `{} {}` failed ({status})",
                self.name,
                self.build.command,
                self.build.args.join(" ")
            ));
        }
        let output = self.dir.join(&self.output);
        if !output.is_file() {
            return Err(format!(
                "{}: the build succeeded but build.output {} does not exist",
                self.name,
                output.display()
            ));
        }
        Ok(started.elapsed())
    }

    /// Whether a change to `path` calls for a rebuild.
    fn watches(&self, path: &Path) -> bool {
        path.strip_prefix(&self.dir)
            .is_ok_and(|relative| self.watch.is_match(relative))
    }
}

/// Builds every function under `root`; returns whether all built. Prints one line each.
pub fn build_all(root: &Path) -> Result<bool, String> {
    let (functions, problems) = discover(root)?;
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    let mut ok = problems.is_empty();
    for function in &functions {
        eprintln!("building {}", function.name);
        match function.run() {
            Ok(took) => println!("built {} in {:.1}s", function.name, took.as_secs_f64()),
            Err(error) => {
                eprintln!("error: {error}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Builds everything once, then rebuilds each function whose watched files change, until
/// interrupted.
pub fn watch(root: &Path) -> Result<(), String> {
    build_all(root)?;
    // Events name absolute paths; so do the functions found under the canonical root.
    let root =
        std::fs::canonicalize(root).map_err(|error| format!("{}: {error}", root.display()))?;
    let (events, changes) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let _ = events.send(event.paths);
        }
    })
    .map_err(|error| format!("cannot watch {}: {error}", root.display()))?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|error| format!("cannot watch {}: {error}", root.display()))?;
    eprintln!("watching {} for changes", root.display());
    loop {
        let Ok(first) = changes.recv() else {
            return Ok(());
        };
        let mut changed: Vec<PathBuf> = first;
        while let Ok(more) = changes.recv_timeout(DEBOUNCE) {
            changed.extend(more);
        }
        // Manifests may have changed too: look again.
        let (functions, problems) = match discover(&root) {
            Ok(found) => found,
            Err(error) => {
                eprintln!("error: {error}");
                continue;
            }
        };
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        for function in functions
            .iter()
            .filter(|f| changed.iter().any(|path| f.watches(path)))
        {
            eprintln!("rebuilding {}", function.name);
            match function.run() {
                Ok(took) => println!("rebuilt {} in {:.1}s", function.name, took.as_secs_f64()),
                Err(error) => eprintln!("error: {error}"),
            }
        }
    }
}
