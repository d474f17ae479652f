//! `wasm-lambda validate`: every problem of a function directory at once, each naming its file.
//!
//! - every manifest parses and validates;
//! - every module exists, compiles and exports the entrypoints its manifest names;
//! - no two functions claim the same route;
//! - every hook is one the SAM template can deliver, and every grant names a bucket, queue or
//!   topic the template defines (and key-value state a table it gives), when there is a template.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::PluginCache;
use crate::catalog::Catalog;
use crate::cli::template::Template;
use crate::invoke::CompileOptions;
use crate::loader::Loader;
use crate::manifest::MANIFEST_FILE;
use crate::router::RouteTable;
use crate::store::{DirStore, FunctionStore};

/// How long validation waits for the store; a local directory answers at once.
const WAIT: Duration = Duration::from_secs(60);

/// What validation found: each function's problems (none: it is fine).
#[derive(Debug, Default)]
pub struct Report {
    pub functions: BTreeMap<String, Vec<String>>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.functions.values().all(Vec::is_empty)
    }

    fn problem(&mut self, function: &str, problem: String) {
        self.functions
            .entry(function.to_string())
            .or_default()
            .push(problem);
    }
}

/// Validates the functions under `dir`, and their hooks against `template` if given. Fails only
/// when `dir` (or the template) cannot be read at all.
pub async fn validate(dir: &Path, template: Option<&Path>) -> Result<Report, String> {
    let template = template.map(Template::load).transpose()?;
    let store = DirStore::new(dir);
    let catalog = Catalog::new(Arc::new(store.clone()), Duration::ZERO);
    let loader = Loader::new(
        catalog.shared_store(),
        Duration::ZERO,
        PluginCache::new(u64::MAX),
        CompileOptions::default(),
    );
    let snapshot = catalog
        .snapshot(WAIT)
        .await
        .map_err(|error| error.to_string())?;

    let mut report = Report::default();
    for (name, invalid) in &snapshot.invalid {
        for problem in &invalid.problems {
            report.problem(name, problem.clone());
        }
    }
    for (name, entry) in &snapshot.functions {
        report.functions.entry(name.clone()).or_default();
        if let Err(error) = loader.compiled(entry, WAIT).await {
            report.problem(name, error.to_string());
        }
        let Some(template) = &template else { continue };
        let file = store.locate(name, MANIFEST_FILE);
        for (index, hook) in entry.manifest.hooks.iter().enumerate() {
            if let Err(reason) = template.check(hook) {
                report.problem(name, format!("{file}: hooks[{index}]: {reason}"));
            }
        }
        for (field, reason) in template.check_grants(&entry.manifest.grants) {
            report.problem(name, format!("{file}: {field}: {reason}"));
        }
    }

    let (_, conflicts) =
        RouteTable::build(snapshot.functions.values().map(|e| e.manifest.as_ref()));
    for conflict in conflicts {
        let function = conflict
            .dropped
            .rsplit(" -> ")
            .next()
            .unwrap_or_default()
            .to_string();
        let file = store.locate(&function, MANIFEST_FILE);
        report.problem(
            &function,
            format!(
                "{file}: route {} conflicts with {} ({})",
                conflict.dropped, conflict.kept, conflict.reason
            ),
        );
    }
    Ok(report)
}
