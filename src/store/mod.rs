//! Where functions live: a directory for local work, S3 in the cloud.
//!
//! Both keep the same layout, `<root>/<name>/manifest.yaml` and the module beside it, and both
//! tag every object with a version (file mtime + size, or an S3 ETag) so callers re-read an
//! object only when it changed. Nothing above this module knows which store it talks to.

mod dir;
mod s3;

pub use dir::{DirStore, function_dirs, read_manifest};
pub use s3::{ARTIFACTS_DIR, IndexedManifest, ManifestIndex, S3Store, client_from_env};

use std::time::Duration;

use bytes::Bytes;

/// The version of a stored object: equal versions mean equal content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub String);

/// An object's content and the version it was read at.
#[derive(Debug, Clone)]
pub struct Stored {
    pub bytes: Bytes,
    pub version: Version,
}

/// A failed store operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The store could not be read (I/O error, network, 5xx).
    #[error("{location}: {reason}")]
    Unavailable { location: String, reason: String },
}

/// A source of function manifests and modules.
#[async_trait::async_trait]
pub trait FunctionStore: Send + Sync + 'static {
    /// Every function in the store, with the version of its manifest.
    async fn list(&self) -> Result<Vec<(String, Version)>, StoreError>;

    /// Reads `<name>/<path>`, or returns `None` when its version is still `known`.
    async fn read(
        &self,
        name: &str,
        path: &str,
        known: Option<&Version>,
    ) -> Result<Option<Stored>, StoreError>;

    /// `<name>/<path>` as a user would look for it (a file path or an `s3://` URL).
    fn locate(&self, name: &str, path: &str) -> String;

    /// The store as a whole, for messages (`directory functions`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Whether the store holds published versions (written by `wasm-lambda publish`): modules
    /// are immutable and change only with a new manifest, and a broken new version must never
    /// replace a working one. A directory being edited is not published: edits show at once.
    fn published(&self) -> bool;

    /// Manifests as of an index the store keeps (name, text and version), if it keeps one: a
    /// hint, used only for manifests the listing shows at the same version.
    async fn manifest_index(&self) -> Option<Vec<(String, Stored)>> {
        None
    }

    /// The bundle of compiled artifacts the store keeps as `key` (`<engine>/<module digest>`), if
    /// any: `None` when the store answered without one (none, or none this role may read), an
    /// error only when it gave no answer, so the module, from the same store, is not asked for
    /// after it. A store that keeps none has none.
    async fn artifact_bundle(&self, _key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(None)
    }

    /// Whether the store's last listing, if it is younger than `within`, shows the bundle of
    /// compiled artifacts `key`: `None` when it cannot tell. A hint that saves a request.
    fn artifact_listed(&self, _key: &str, _within: Duration) -> Option<bool> {
        None
    }

    /// Whether the store keeps bundles of compiled artifacts for the fleet (S3 does; a local
    /// directory does not, so nothing is bundled or said to be shared).
    fn keeps_artifacts(&self) -> bool {
        false
    }

    /// Keeps the bundle of compiled artifacts `key`. A store that keeps none ignores it.
    async fn put_artifact_bundle(&self, _key: &str, _bundle: Bytes) -> Result<(), StoreError> {
        Ok(())
    }
}
