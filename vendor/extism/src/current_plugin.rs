use wasmtime::error::Context as _;

use crate::plugin::Kernel;
use crate::*;

/// CurrentPlugin stores data that is available to the caller in PDK functions, this should
/// only be accessed from inside a host function
pub struct CurrentPlugin {
    /// Plugin variables
    pub(crate) vars: std::collections::BTreeMap<String, Vec<u8>>,

    /// Extism manifest (wasm-lambda: shared with the compiled plugin)
    pub(crate) manifest: std::sync::Arc<extism_manifest::Manifest>,
    pub(crate) store: *mut Store<CurrentPlugin>,
    /// wasm-lambda: the kernel's exports in this store (none before its kernel is instantiated);
    /// the host finds them here rather than by name in a linker made for every store.
    pub(crate) kernel: Option<crate::plugin::Kernel>,
    pub(crate) wasi: Option<Wasi>,
    pub(crate) http_status: u16,
    pub(crate) http_headers: Option<std::collections::BTreeMap<String, String>>,
    pub(crate) available_pages: Option<u32>,
    pub(crate) memory_limiter: Option<MemoryLimiter>,
    pub(crate) id: uuid::Uuid,
    pub(crate) start_time: std::time::Instant,
}

unsafe impl Send for CurrentPlugin {}

pub(crate) struct MemoryLimiter {
    bytes_left: usize,
    max_bytes: usize,
    // wasm-lambda: table elements count too (upstream let tables grow without bound), against
    // the same limit, for every table of the store, for its whole life.
    table_bytes: usize,
}

/// wasm-lambda: what wasmtime holds per table element at most (a pointer).
pub(crate) const TABLE_ELEMENT_BYTES: usize = 8;

/// wasm-lambda: instances, tables and memories a store may hold (wasmtime's default is 10,000
/// of each); an Extism plugin has two instances (its module and the kernel).
const STORE_ITEMS: usize = 64;

impl MemoryLimiter {
    pub(crate) fn new(max_bytes: usize) -> MemoryLimiter {
        MemoryLimiter {
            bytes_left: max_bytes,
            max_bytes,
            table_bytes: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.bytes_left = self.max_bytes;
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        if let Some(max) = maximum {
            if desired >= max {
                return Err(wasmtime::Error::msg("oom"));
            }
        }

        let d = desired - current;
        if d > self.bytes_left {
            return Err(wasmtime::Error::msg("oom"));
        }

        self.bytes_left -= d;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        if let Some(max) = maximum {
            if desired > max {
                return Ok(false);
            }
        }
        let grown = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        let total = self.table_bytes.saturating_add(grown);
        if total > self.max_bytes {
            return Err(wasmtime::Error::msg(format!(
                "table limit: tables of {} elements",
                total / TABLE_ELEMENT_BYTES
            )));
        }
        self.table_bytes = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        STORE_ITEMS
    }

    fn tables(&self) -> usize {
        STORE_ITEMS
    }

    fn memories(&self) -> usize {
        STORE_ITEMS
    }
}

impl CurrentPlugin {
    /// Gets `Plugin`'s ID
    pub fn id(&self) -> uuid::Uuid {
        self.id
    }

    /// Get a `MemoryHandle` from a memory offset
    pub fn memory_handle(&mut self, offs: u64) -> Option<MemoryHandle> {
        if offs == 0 {
            return Some(MemoryHandle::null());
        }
        let len = self.memory_length(offs).unwrap_or_default();
        if len == 0 {
            trace!(
                plugin = self.id.to_string(),
                "memory handle not found: offs = {offs}",
            );
            return None;
        }

        trace!(
            plugin = self.id.to_string(),
            "memory handle found: offs = {offs}, length = {len}",
        );
        Some(MemoryHandle {
            offset: offs,
            length: len,
        })
    }

    /// Access memory bytes as `str`
    pub fn memory_str_mut(&mut self, handle: MemoryHandle) -> Result<&mut str, Error> {
        let bytes = self.memory_bytes_mut(handle)?;
        let s = std::str::from_utf8_mut(bytes)?;
        Ok(s)
    }

    pub fn memory_str(&mut self, handle: MemoryHandle) -> Result<&str, Error> {
        let bytes = self.memory_bytes(handle)?;
        let s = std::str::from_utf8(bytes)?;
        Ok(s)
    }

    /// Allocate a handle large enough for the encoded Rust type and copy it into Extism memory
    pub fn memory_new<'a, T: ToBytes<'a>>(&mut self, t: T) -> Result<MemoryHandle, Error> {
        let data = t.to_bytes()?;
        let data = data.as_ref();
        if data.is_empty() {
            return Ok(MemoryHandle::null());
        }
        let handle = self.memory_alloc(data.len() as u64)?;
        let bytes = self.memory_bytes_mut(handle)?;
        bytes.copy_from_slice(data.as_ref());
        Ok(handle)
    }

    /// Decode a Rust type from Extism memory
    pub fn memory_get<'a, T: FromBytes<'a>>(
        &'a mut self,
        handle: MemoryHandle,
    ) -> Result<T, Error> {
        let data = self.memory_bytes(handle)?;
        T::from_bytes(data)
    }

    /// Decode a Rust type from Extism memory from an offset in memory specified by a `Val`
    pub fn memory_get_val<'a, T: FromBytes<'a>>(&'a mut self, offs: &Val) -> Result<T, Error> {
        trace!(
            plugin = self.id.to_string(),
            "memory_set_val: val = {:?}",
            offs
        );
        if let Some(handle) = self.memory_handle(offs.i64().unwrap_or(0) as u64) {
            let data = self.memory_bytes(handle)?;
            T::from_bytes(data)
        } else {
            anyhow::bail!("{} invalid memory offset: {offs:?}", self.id)
        }
    }

    /// Encode a Rust type into Extism memory and store it in the given `Val`, this can be used to return
    /// values from host functions.    
    pub fn memory_set_val<'a, T: ToBytes<'a>>(
        &'a mut self,
        offs: &mut Val,
        data: T,
    ) -> Result<(), Error> {
        let mem = self.memory_new(data)?;
        trace!(
            plugin = self.id.to_string(),
            "memory_set_val: val = {:?}",
            offs
        );
        *offs = Val::I64(mem.offset as i64);
        Ok(())
    }

    pub fn memory_bytes_mut(&mut self, handle: MemoryHandle) -> Result<&mut [u8], Error> {
        if let Some(kernel) = self.kernel {
            let store = self.store_mut();
            let ptr = unsafe {
                kernel
                    .memory
                    .data_ptr(&*store)
                    .add(handle.offset() as usize)
            };
            if ptr.is_null() {
                return Ok(&mut []);
            }
            return Ok(unsafe { std::slice::from_raw_parts_mut(ptr, handle.len()) });
        }

        anyhow::bail!("{} unable to locate extism memory", self.id)
    }

    pub fn memory_bytes(&mut self, handle: MemoryHandle) -> Result<&[u8], Error> {
        if let Some(kernel) = self.kernel {
            let store = self.store_mut();
            let ptr = unsafe {
                kernel
                    .memory
                    .data_ptr(&*store)
                    .add(handle.offset() as usize)
            };
            if ptr.is_null() {
                return Ok(&[]);
            }
            return Ok(unsafe { std::slice::from_raw_parts(ptr, handle.len()) });
        }

        anyhow::bail!("{} unable to locate extism memory", self.id)
    }

    pub fn host_context<T: 'static>(&mut self) -> Result<&mut T, Error> {
        let Some(kernel) = self.kernel else {
            anyhow::bail!("unable to locate an extism kernel global: extism_context",)
        };
        let xs = kernel.extism_context;
        let store = self.store_mut();

        let Val::ExternRef(Some(xs)) = xs.get(&mut *store) else {
            anyhow::bail!("expected extism_context to be an externref value",)
        };

        if let Some(d) = xs.data_mut(&mut *store)? {
            match d.downcast_mut::<Box<dyn std::any::Any + Send + Sync>>() {
                Some(xs) => match xs.downcast_mut::<T>() {
                    Some(xs) => Ok(xs),
                    None => anyhow::bail!("could not downcast extism_context inner value"),
                },
                None => anyhow::bail!("could not downcast extism_context"),
            }
        } else {
            anyhow::bail!("extism_context not found")
        }
    }

    pub fn memory_alloc(&mut self, n: u64) -> Result<MemoryHandle, Error> {
        if n == 0 {
            return Ok(MemoryHandle {
                offset: 0,
                length: 0,
            });
        }
        let id = self.id;
        let f = self
            .kernel
            .map(|kernel| kernel.alloc)
            .with_context(|| format!("{} unable to allocate memory", id))?;
        let store = self.store_mut();
        let offs = catch_out_of_fuel!(
            &store,
            Kernel::call(&mut *store, f, &[n as i64]).context("failed to allocate extism memory")
        )? as u64;
        if offs == 0 {
            anyhow::bail!("{} out of memory", id)
        }
        trace!(
            plugin = self.id.to_string(),
            "memory_alloc({}) = {}",
            offs,
            n
        );
        Ok(MemoryHandle {
            offset: offs,
            length: n,
        })
    }

    /// Free a block of Extism plugin memory
    pub fn memory_free(&mut self, handle: MemoryHandle) -> Result<(), Error> {
        let f = self
            .kernel
            .map(|kernel| kernel.free)
            .context("unable to locate an extism kernel function: free")?;
        let store = self.store_mut();
        catch_out_of_fuel!(
            &store,
            Kernel::call(&mut *store, f, &[handle.offset as i64])
                .context("failed to free extism memory")
        )?;

        Ok(())
    }

    pub fn memory_length(&mut self, offs: u64) -> Result<u64, Error> {
        let f = self
            .kernel
            .map(|kernel| kernel.length)
            .context("unable to locate an extism kernel function: length")?;
        let store = self.store_mut();
        let len = catch_out_of_fuel!(
            &store,
            Kernel::call(&mut *store, f, &[offs as i64])
                .context("failed to get length of extism memory handle")
        )? as u64;
        trace!(
            plugin = self.id.to_string(),
            "memory_length({}) = {}",
            offs,
            len
        );
        Ok(len)
    }

    pub fn memory_length_unsafe(&mut self, offs: u64) -> Result<u64, Error> {
        let f = self
            .kernel
            .map(|kernel| kernel.length_unsafe)
            .context("unable to locate an extism kernel function: length_unsafe")?;
        let store = self.store_mut();
        let len = catch_out_of_fuel!(
            &store,
            Kernel::call(&mut *store, f, &[offs as i64])
                .context("failed to get length of extism memory using length_unsafe")
        )? as u64;
        trace!(
            plugin = self.id.to_string(),
            "memory_length_unsafe({}) = {}",
            offs,
            len
        );
        Ok(len)
    }

    /// Access a plugin's variables
    pub fn vars(&self) -> &std::collections::BTreeMap<String, Vec<u8>> {
        &self.vars
    }

    /// Mutable access to a plugin's variables
    pub fn vars_mut(&mut self) -> &mut std::collections::BTreeMap<String, Vec<u8>> {
        &mut self.vars
    }

    /// Plugin manifest
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub(crate) fn new(
        manifest: std::sync::Arc<extism_manifest::Manifest>,
        wasi: bool,
        available_pages: Option<u32>,
        allow_http_response_headers: bool,
        id: uuid::Uuid,
    ) -> Result<Self, Error> {
        let wasi = if wasi {
            let mut ctx = wasmtime_wasi::WasiCtxBuilder::new();

            if let Some(paths) = &manifest.allowed_paths {
                for (host_path, guest_path) in paths {
                    let readonly = host_path.starts_with("ro:");
                    let host_path = host_path.strip_prefix("ro:").unwrap_or(host_path);
                    let perms = if readonly {
                        wasmtime_wasi::FsPerms::ReadOnly
                    } else {
                        wasmtime_wasi::FsPerms::ReadWrite
                    };

                    let guest_path = guest_path.to_str().ok_or_else(|| {
                        anyhow::anyhow!("WASI guest path is not valid UTF-8: {guest_path:?}")
                    })?;
                    ctx.preopened_dir(host_path, guest_path, perms)?;
                }
            }

            // Enable WASI output, typically used for debugging purposes
            if std::env::var("EXTISM_ENABLE_WASI_OUTPUT").is_ok() {
                ctx.inherit_stderr().inherit_stdout();
            }

            Some(Wasi {
                ctx: ctx.build_p1(),
            })
        } else {
            None
        };

        let memory_limiter = if let Some(pgs) = available_pages {
            let n = pgs as usize * 65536;
            Some(MemoryLimiter::new(n))
        } else {
            None
        };

        Ok(CurrentPlugin {
            wasi,
            manifest,
            http_status: 0,
            vars: BTreeMap::new(),
            kernel: None,
            store: std::ptr::null_mut(),
            available_pages,
            memory_limiter,
            id,
            start_time: std::time::Instant::now(),
            http_headers: if allow_http_response_headers {
                Some(BTreeMap::new())
            } else {
                None
            },
        })
    }

    /// Get a pointer to the plugin memory
    pub(crate) fn memory_ptr(&mut self) -> *mut u8 {
        if let Some(mem) = self.memory() {
            return mem.data_ptr(self.store());
        }

        std::ptr::null_mut()
    }

    /// Get extism memory
    pub(crate) fn memory(&mut self) -> Option<wasmtime::Memory> {
        self.kernel.map(|kernel| kernel.memory)
    }

    /// Get a `MemoryHandle` from a `Val` reference - this can be used to convert a host function's
    /// argument directly to `MemoryHandle`
    pub fn memory_from_val(&mut self, offs: &Val) -> Option<MemoryHandle> {
        let offs = offs.i64()? as u64;
        let length = self.memory_length(offs).unwrap_or_default();
        if length == 0 {
            return None;
        }
        Some(MemoryHandle {
            offset: offs,
            length,
        })
    }

    /// Get a `MemoryHandle` from a `Val` reference - this can be used to convert a host function's
    /// argument directly to `MemoryHandle`
    pub fn memory_to_val(&mut self, handle: MemoryHandle) -> Val {
        Val::I64(handle.offset() as i64)
    }

    /// Clear the current plugin error
    pub fn clear_error(&mut self) {
        trace!(plugin = self.id.to_string(), "CurrentPlugin::clear_error");
        if let Some(kernel) = self.kernel {
            let store = self.store_mut();
            let res = Kernel::call(&mut *store, kernel.error_set, &[0]);
            if let Err(e) = res {
                error!(
                    plugin = self.id.to_string(),
                    "unable to clear error: {:?}", e
                );
            }
        }
    }

    /// Get the current error message
    pub fn get_error(&mut self) -> Option<&str> {
        let (offs, length) = self.get_error_position();
        if offs == 0 {
            return None;
        }

        let s = self.memory_str(MemoryHandle {
            offset: offs,
            length,
        });
        s.ok()
    }

    #[doc(hidden)]
    pub fn set_error(&mut self, s: impl AsRef<str>) -> Result<(u64, u64), Error> {
        let s = s.as_ref();
        debug!(plugin = self.id.to_string(), "set error: {:?}", s);
        let handle = self.memory_new(s)?;
        if let Some(kernel) = self.kernel {
            let store = self.store_mut();
            catch_out_of_fuel!(
                &store,
                Kernel::call(&mut *store, kernel.error_set, &[handle.offset() as i64])
                    .context("failed to set extism error")
            )?;
            Ok((handle.offset(), s.len() as u64))
        } else {
            anyhow::bail!("extism:host/env::error_set not found");
        }
    }

    pub(crate) fn get_error_position(&mut self) -> (u64, u64) {
        let mut offs = 0;
        if let Some(kernel) = self.kernel {
            let store = self.store_mut();
            match catch_out_of_fuel!(&store, Kernel::call(&mut *store, kernel.error_get, &[])) {
                Ok(offset) => offs = offset as u64,
                Err(e) => {
                    error!(
                        plugin = self.id.to_string(),
                        "unable to call extism:host/env::error_get: {:?}", e
                    );
                    return (0, 0);
                }
            }
        };
        let length = self.memory_length(offs).unwrap_or_default();
        (offs, length)
    }

    /// Returns the remaining time before a plugin will timeout, or
    /// `None` if no timeout is configured in the manifest
    pub fn time_remaining(&self) -> Option<std::time::Duration> {
        if let Some(x) = &self.manifest.timeout_ms {
            let elapsed = &self.start_time.elapsed().as_millis();
            let ms_left = x.saturating_sub(*elapsed as u64);
            return Some(std::time::Duration::from_millis(ms_left));
        }

        None
    }
}

impl Internal for CurrentPlugin {
    fn store(&self) -> &Store<CurrentPlugin> {
        unsafe { &*self.store }
    }

    fn store_mut(&mut self) -> &mut Store<CurrentPlugin> {
        unsafe { &mut *self.store }
    }
}
