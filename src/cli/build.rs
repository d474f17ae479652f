//! `wasm-lambda build [DIR] [--watch]`: runs each manifest's `build` and checks its output exists;
//! with `--watch`, rebuilds a function whenever a file matching its `watch` globs changes.
//!
//! With the bootstrap serving the same directory (`make run`), a rebuilt module is served from the
//! next invocation on: nothing restarts.
//!
//! Only a change of content rebuilds: the watcher keeps a digest of every watched file, and a
//! burst of events (an editor's save, a build reading its own sources, `cat`, `touch`) rebuilds
//! a function only when one of its watched files now reads differently (or appeared, or went).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

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

    /// The digest of every watched file: what a rebuild is judged against. Build outputs
    /// (`target/`) and hidden directories are not looked into.
    fn contents(&self) -> BTreeMap<PathBuf, [u8; 32]> {
        let mut files = BTreeMap::new();
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let name = entry.file_name();
                if kind.is_dir() {
                    if name != "target" && !name.to_string_lossy().starts_with('.') {
                        dirs.push(path);
                    }
                } else if self.watches(&path)
                    && let Ok(bytes) = std::fs::read(&path)
                {
                    files.insert(path, Sha256::digest(&bytes).into());
                }
            }
        }
        files
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
    let mut known: BTreeMap<String, BTreeMap<PathBuf, [u8; 32]>> = match discover(&root) {
        Ok((functions, _)) => functions
            .iter()
            .map(|function| (function.name.clone(), function.contents()))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
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
            .filter(|f| changed.iter().any(|path| path.starts_with(&f.dir)))
        {
            let now = function.contents();
            if known.get(&function.name) == Some(&now) {
                continue;
            }
            eprintln!("rebuilding {}", function.name);
            match function.run() {
                Ok(took) => println!("rebuilt {} in {:.1}s", function.name, took.as_secs_f64()),
                Err(error) => eprintln!("error: {error}"),
            }
            // What the build itself read or wrote is judged by content too, next time.
            known.insert(function.name.clone(), function.contents());
        }
    }
}
