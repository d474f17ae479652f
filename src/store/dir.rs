//! The directory store: `<root>/<name>/manifest.yaml`, the default for local work.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{FunctionStore, StoreError, Stored, Version};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::name;

/// Functions in a local directory. Versions are file mtime, size and inode.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    fn path(&self, name: &str, path: &str) -> PathBuf {
        self.root.join(name).join(path)
    }

    fn unavailable(&self, path: &Path, error: std::io::Error) -> StoreError {
        if error.kind() == ErrorKind::NotFound {
            StoreError::NotFound(path.display().to_string())
        } else {
            StoreError::Unavailable {
                location: path.display().to_string(),
                reason: error.to_string(),
            }
        }
    }
}

/// The function directories under `root`: `root` itself when it holds a manifest, else those of
/// its subdirectories that do, sorted.
pub fn function_dirs(root: &Path) -> Result<Vec<PathBuf>, String> {
    if root.join(MANIFEST_FILE).is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|error| format!("{}: {error}", root.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(MANIFEST_FILE).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Reads and validates the manifest of the function directory `dir`: the manifest and its text.
pub fn read_manifest(dir: &Path) -> Result<(Manifest, String), String> {
    let file = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let directory_name = dir.file_name().and_then(|n| n.to_str());
    let manifest = Manifest::parse(&text, &file.display().to_string(), directory_name)
        .map_err(|e| e.to_string())?;
    Ok((manifest, text))
}

/// mtime (ns), size and inode: editors that save by renaming get a new inode even when the
/// coarse file-system clock gives the same mtime.
fn version_of(metadata: &std::fs::Metadata) -> Version {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    Version(format!("{modified}-{}-{inode}", metadata.len()))
}

#[async_trait::async_trait]
impl FunctionStore for DirStore {
    async fn list(&self) -> Result<Vec<(String, Version)>, StoreError> {
        let mut entries = tokio::fs::read_dir(&self.root)
            .await
            .map_err(|e| self.unavailable(&self.root, e))?;
        let mut functions = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| self.unavailable(&self.root, e))?
        {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            match tokio::fs::metadata(entry.path().join(MANIFEST_FILE)).await {
                Ok(metadata) if metadata.is_file() => {
                    functions.push((name, version_of(&metadata)));
                }
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) if name::is_valid(&name) => {
                    return Err(self.unavailable(&entry.path(), error));
                }
                Err(_) => {}
            }
        }
        functions.sort();
        Ok(functions)
    }

    async fn read(
        &self,
        name: &str,
        path: &str,
        known: Option<&Version>,
    ) -> Result<Option<Stored>, StoreError> {
        let full = self.path(name, path);
        let mut file = tokio::fs::File::open(&full)
            .await
            .map_err(|e| self.unavailable(&full, e))?;
        // Version and content come from the same open file, so they always agree.
        let metadata = file
            .metadata()
            .await
            .map_err(|e| self.unavailable(&full, e))?;
        let version = version_of(&metadata);
        if known == Some(&version) {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        file.read_to_end(&mut bytes)
            .await
            .map_err(|e| self.unavailable(&full, e))?;
        Ok(Some(Stored {
            bytes: Bytes::from(bytes),
            version,
        }))
    }

    fn locate(&self, name: &str, path: &str) -> String {
        self.path(name, path).display().to_string()
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }

    fn published(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_functions_and_reads_only_changed_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a")).unwrap();
        std::fs::create_dir_all(root.path().join("target")).unwrap();
        std::fs::write(root.path().join("a/manifest.yaml"), "name: a").unwrap();
        let store = DirStore::new(root.path());

        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "a");

        let first = store.read("a", MANIFEST_FILE, None).await.unwrap().unwrap();
        assert_eq!(&first.bytes[..], b"name: a");
        assert_eq!(first.version, listed[0].1);
        assert!(
            store
                .read("a", MANIFEST_FILE, Some(&first.version))
                .await
                .unwrap()
                .is_none()
        );

        std::fs::write(root.path().join("a/manifest.yaml"), "name: a\n").unwrap();
        let second = store
            .read("a", MANIFEST_FILE, Some(&first.version))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(second.version, first.version);

        let missing = store.read("a", "a.wasm", None).await.unwrap_err();
        assert!(matches!(missing, StoreError::NotFound(path) if path.ends_with("a/a.wasm")));
    }
}
