//! The developer CLI's commands (`wasm-lambda`): validate, build, invoke, routes, new, publish,
//! versions, rollback, prune, policy, provision.
//! `src/bin/wasm-lambda.rs` parses the command line; the work is here.

pub mod build;
pub mod provision;
pub mod publish;
pub mod resources;
pub mod scaffold;
pub mod template;
pub mod validate;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::app::Adapter;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::router::RouteTable;
use crate::store::{DirStore, FunctionStore, StoreError, Stored, Version};
use crate::trigger::HookKind;

/// The routing table of the functions under `dir`, as text: one row per hook. Also returns the
/// problems found: invalid manifests and route conflicts.
pub async fn routes(dir: &Path) -> Result<(String, Vec<String>), String> {
    let catalog = Catalog::new(Arc::new(DirStore::new(dir)), Duration::ZERO);
    let snapshot = catalog
        .snapshot(Duration::from_secs(60))
        .await
        .map_err(|error| error.to_string())?;
    let mut rows: Vec<[String; 4]> = Vec::new();
    for entry in snapshot.functions.values() {
        let manifest = &entry.manifest;
        for hook in &manifest.hooks {
            let entrypoint = hook.entrypoint().unwrap_or(&manifest.entrypoint);
            rows.push([
                hook.kind().to_string(),
                hook.to_string(),
                manifest.name.clone(),
                entrypoint.to_string(),
            ]);
        }
    }
    rows.sort_by_key(|row| (kind_order(&row[0]), row[1].clone()));
    let mut problems: Vec<String> = snapshot
        .invalid
        .values()
        .flat_map(|invalid| invalid.problems.iter().cloned())
        .collect();
    let (_, conflicts) =
        RouteTable::build(snapshot.functions.values().map(|e| e.manifest.as_ref()));
    problems.extend(conflicts.into_iter().map(|c| {
        format!(
            "route {} conflicts with {} ({}); it is not served",
            c.dropped, c.kept, c.reason
        )
    }));
    Ok((
        table(["HOOK", "MATCH", "FUNCTION", "ENTRYPOINT"], &rows),
        problems,
    ))
}

/// Where `kind` comes in the listing: the order of [`HookKind::ALL`].
fn kind_order(kind: &str) -> usize {
    HookKind::ALL
        .iter()
        .position(|k| k.name() == kind)
        .unwrap_or(HookKind::ALL.len())
}

fn table(header: [&str; 4], rows: &[[String; 4]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut text = line(header);
    for row in rows {
        text.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    text
}

/// A store that shows one function of another store: `invoke NAME --event FILE` routes the
/// event to NAME alone.
struct OnlyFunction {
    inner: Arc<dyn FunctionStore>,
    name: String,
}

#[async_trait::async_trait]
impl FunctionStore for OnlyFunction {
    async fn list(&self) -> Result<Vec<(String, Version)>, StoreError> {
        let mut listed = self.inner.list().await?;
        listed.retain(|(name, _)| *name == self.name);
        Ok(listed)
    }

    async fn read(
        &self,
        name: &str,
        path: &str,
        known: Option<&Version>,
    ) -> Result<Option<Stored>, StoreError> {
        if name != self.name {
            return Err(StoreError::NotFound(self.inner.locate(name, path)));
        }
        self.inner.read(name, path, known).await
    }

    fn locate(&self, name: &str, path: &str) -> String {
        self.inner.locate(name, path)
    }

    fn describe(&self) -> String {
        format!("{} (only `{}`)", self.inner.describe(), self.name)
    }

    fn published(&self) -> bool {
        self.inner.published()
    }
}

/// What `invoke` sends the function.
pub enum Invocation {
    /// A direct invocation with this input.
    Input(Value),
    /// This event, routed as the bootstrap routes it.
    Event(Value),
}

/// Runs `function` once, on the bootstrap's own code path, with a deadline `timeout` away.
/// Returns the answer the bootstrap would give Lambda: the result, or `{"errorType",
/// "errorMessage"}` and `false`.
pub async fn invoke(
    config: Config,
    function: &str,
    invocation: Invocation,
    timeout: Duration,
) -> Result<(Value, bool), String> {
    let store = Adapter::store_for(&config)
        .await
        .map_err(|error| error.to_string())?;
    let store: Arc<dyn FunctionStore> = match &invocation {
        Invocation::Input(_) => store,
        Invocation::Event(_) => Arc::new(OnlyFunction {
            inner: store,
            name: function.to_string(),
        }),
    };
    let adapter = Arc::new(
        Adapter::with_store(config, store)
            .await
            .map_err(|error| error.to_string())?
            .without_metrics(),
    );
    adapter.serve_invocations();
    let payload = match invocation {
        Invocation::Input(input) => json!({"function": function, "input": input}),
        Invocation::Event(event) => event,
    };
    let mut context = Context::default();
    context.request_id = format!("local-{}", std::process::id());
    context.invoked_function_arn = "arn:aws:lambda:local:000000000000:function:bootstrap".into();
    context.deadline = (SystemTime::now() + timeout)
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or_default();
    Ok(
        match adapter.handle(LambdaEvent::new(payload, context)).await {
            Ok(answer) => (answer, true),
            Err(error) => (
                json!({"errorType": error.error_type(), "errorMessage": error.to_string()}),
                false,
            ),
        },
    )
}
