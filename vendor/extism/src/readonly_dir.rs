use crate::*;

use async_trait::async_trait;
use wasi_common::file::{Advice, FdFlags, FileType, Filestat, OFlags};
use wasi_common::{Error, ErrorExt, WasiDir, WasiFile};

// wasm-lambda: a read-only grant refuses every call that would change what it holds. Upstream's
// wrapper refused only opens asking write rights, so `path_open` with `O_CREAT`/`O_TRUNC` and
// read rights created or emptied host files; a directory opened inside the grant, and a file
// opened in it, lost the wrapper; and its `as_any` handed out the inner directory, so a rename or
// hard link from a writable grant (which downcasts its destination to a plain `Dir`) reached
// into the read-only one.

/// The open flags that create or change a file.
fn mutating(oflags: OFlags) -> bool {
    oflags.intersects(OFlags::CREATE | OFlags::TRUNCATE | OFlags::EXCLUSIVE)
}

fn refused() -> Error {
    Error::perm().context("read-only directory grant")
}

/// A directory of a read-only grant, or one opened inside it.
pub struct ReadOnlyDir {
    inner: Box<dyn WasiDir>,
}

impl ReadOnlyDir {
    pub fn new(inner: impl WasiDir + 'static) -> Self {
        ReadOnlyDir {
            inner: Box::new(inner),
        }
    }
}

/// A file opened inside a read-only grant (its descriptor is opened for reading only; this
/// also refuses what a read-only descriptor still allows, such as setting its times).
struct ReadOnlyFile(Box<dyn WasiFile>);

#[async_trait]
impl WasiDir for ReadOnlyDir {
    fn as_any(&self) -> &dyn std::any::Any {
        // Not the inner directory: nothing may downcast this one into a writable one.
        self
    }

    async fn open_file(
        &self,
        symlink_follow: bool,
        path: &str,
        oflags: OFlags,
        read: bool,
        write: bool,
        fdflags: FdFlags,
    ) -> Result<wasi_common::dir::OpenResult, Error> {
        if write || mutating(oflags) {
            return Err(refused());
        }
        let opened = self
            .inner
            .open_file(symlink_follow, path, oflags, read, false, fdflags)
            .await?;
        Ok(match opened {
            wasi_common::dir::OpenResult::File(file) => {
                wasi_common::dir::OpenResult::File(Box::new(ReadOnlyFile(file)))
            }
            wasi_common::dir::OpenResult::Dir(dir) => {
                wasi_common::dir::OpenResult::Dir(Box::new(ReadOnlyDir { inner: dir }))
            }
        })
    }

    async fn create_dir(&self, _path: &str) -> Result<(), Error> {
        Err(refused())
    }

    async fn readdir(
        &self,
        cursor: wasi_common::dir::ReaddirCursor,
    ) -> Result<
        Box<dyn Iterator<Item = Result<wasi_common::dir::ReaddirEntity, Error>> + Send>,
        Error,
    > {
        self.inner.readdir(cursor).await
    }

    async fn symlink(&self, _old_path: &str, _new_path: &str) -> Result<(), Error> {
        Err(refused())
    }

    async fn remove_dir(&self, _path: &str) -> Result<(), Error> {
        Err(refused())
    }

    async fn unlink_file(&self, _path: &str) -> Result<(), Error> {
        Err(refused())
    }

    async fn read_link(&self, path: &str) -> Result<std::path::PathBuf, Error> {
        self.inner.read_link(path).await
    }

    async fn get_filestat(&self) -> Result<Filestat, Error> {
        self.inner.get_filestat().await
    }

    async fn get_path_filestat(
        &self,
        path: &str,
        follow_symlinks: bool,
    ) -> Result<Filestat, Error> {
        self.inner.get_path_filestat(path, follow_symlinks).await
    }

    async fn rename(
        &self,
        _path: &str,
        _dest_dir: &dyn WasiDir,
        _dest_path: &str,
    ) -> Result<(), Error> {
        Err(refused())
    }

    async fn hard_link(
        &self,
        _path: &str,
        _target_dir: &dyn WasiDir,
        _target_path: &str,
    ) -> Result<(), Error> {
        Err(refused())
    }

    async fn set_times(
        &self,
        _path: &str,
        _atime: std::option::Option<wasi_common::SystemTimeSpec>,
        _mtime: std::option::Option<wasi_common::SystemTimeSpec>,
        _follow_symlinks: bool,
    ) -> Result<(), Error> {
        Err(refused())
    }
}

#[async_trait]
impl WasiFile for ReadOnlyFile {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn get_filetype(&self) -> Result<FileType, Error> {
        self.0.get_filetype().await
    }

    fn isatty(&self) -> bool {
        self.0.isatty()
    }

    async fn datasync(&self) -> Result<(), Error> {
        self.0.datasync().await
    }

    async fn sync(&self) -> Result<(), Error> {
        self.0.sync().await
    }

    async fn get_fdflags(&self) -> Result<FdFlags, Error> {
        self.0.get_fdflags().await
    }

    async fn set_fdflags(&mut self, flags: FdFlags) -> Result<(), Error> {
        if flags.contains(FdFlags::APPEND) {
            return Err(refused());
        }
        self.0.set_fdflags(flags).await
    }

    async fn get_filestat(&self) -> Result<Filestat, Error> {
        self.0.get_filestat().await
    }

    async fn set_filestat_size(&self, _size: u64) -> Result<(), Error> {
        Err(refused())
    }

    async fn advise(&self, offset: u64, len: u64, advice: Advice) -> Result<(), Error> {
        self.0.advise(offset, len, advice).await
    }

    async fn set_times(
        &self,
        _atime: Option<wasi_common::SystemTimeSpec>,
        _mtime: Option<wasi_common::SystemTimeSpec>,
    ) -> Result<(), Error> {
        Err(refused())
    }

    async fn read_vectored<'a>(&self, bufs: &mut [std::io::IoSliceMut<'a>]) -> Result<u64, Error> {
        self.0.read_vectored(bufs).await
    }

    async fn read_vectored_at<'a>(
        &self,
        bufs: &mut [std::io::IoSliceMut<'a>],
        offset: u64,
    ) -> Result<u64, Error> {
        self.0.read_vectored_at(bufs, offset).await
    }

    async fn write_vectored<'a>(&self, _bufs: &[std::io::IoSlice<'a>]) -> Result<u64, Error> {
        Err(refused())
    }

    async fn write_vectored_at<'a>(
        &self,
        _bufs: &[std::io::IoSlice<'a>],
        _offset: u64,
    ) -> Result<u64, Error> {
        Err(refused())
    }

    async fn seek(&self, pos: std::io::SeekFrom) -> Result<u64, Error> {
        self.0.seek(pos).await
    }

    async fn peek(&self, buf: &mut [u8]) -> Result<u64, Error> {
        self.0.peek(buf).await
    }

    fn num_ready_bytes(&self) -> Result<u64, Error> {
        self.0.num_ready_bytes()
    }

    async fn readable(&self) -> Result<(), Error> {
        self.0.readable().await
    }

    async fn writable(&self) -> Result<(), Error> {
        Err(refused())
    }
}
