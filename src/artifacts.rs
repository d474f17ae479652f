//! Compiled artifacts, kept so that a module is compiled once per digest for the whole fleet
//! rather than once per execution environment.
//!
//! - **Locally**, wasmtime's compile cache in `/tmp` (Lambda's only writable directory): an entry
//!   per compiled module, keyed by wasmtime on the module's bytes, its own version, the target and
//!   the engine settings. Beside it, modules by digest (they never change: a published one is
//!   read from there rather than fetched again, and any loaded one when its engine needs a
//!   replica) and a mark per digest whose artifacts are in the cache, so reloading a function
//!   the plugin cache evicted asks nothing of the store.
//! - **Across the fleet**, the function store keeps a bundle of those entries next to the
//!   modules (`_compiled/<engine>/<module sha256>` under the S3 prefix, where `<engine>` is a
//!   hash of wasmtime's version, the target and its CPU features, and the engine settings; see
//!   [`ArtifactKey`]): one object that carries the module too. A cold environment asks for the
//!   bundle first (one request when there is one), then for the module only if there is none;
//!   when the store's recent listing shows none, only for the module. It writes the entries
//!   into its cache before compiling, so wasmtime loads instead of compiling; an environment
//!   that did compile uploads the entries that appeared, with the module, in the background,
//!   when its role may write there.
//!
//! Only what this runtime wrote is loaded: every entry it writes (compiled here, or from a
//! bundle) is recorded by its identity on disk (inode, size, change time, which no file write
//! can keep), in a ledger kept beside the cache; before each compile, an entry whose identity
//! differs from the ledger's, or that the ledger does not know, is removed, so it is compiled
//! again rather than loaded as native code. No function can reach the cache anyway: a grant of
//! a directory that holds it is refused (`invoke.rs`).
//!
//! An entry that is corrupt or was made by another wasmtime version, target or setting fails
//! wasmtime's own checks (decompression, then its engine-compatibility check) and is compiled
//! afresh: never a crash, never wrong code. A bundle whose bytes do not match the checksum it
//! ends with is not used at all. Only the function role may write `_compiled/`: the
//! template's bucket policy refuses everyone else, as these entries are native code.

use std::collections::BTreeMap;
use std::env::consts::ARCH;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::store::FunctionStore;

/// What compiled artifacts are kept under: the module's SHA-256 and the engine that compiled it.
/// Artifacts of one module made by another wasmtime version, target or setting are under
/// another key, so a fleet mid-rollout never trades artifacts it cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactKey {
    pub engine: String,
    pub module: String,
}

impl ArtifactKey {
    /// The key for module `digest` compiled by the engine Extism builds for a plugin, with or
    /// without fuel metering (the one setting a manifest changes).
    pub fn new(digest: &str, fuel: bool) -> ArtifactKey {
        static ENGINES: OnceLock<[String; 2]> = OnceLock::new();
        let engines = ENGINES.get_or_init(|| {
            [false, true].map(|fuel| engine_hash(&plugin_engine_config(fuel), ARCH))
        });
        ArtifactKey {
            engine: engines[usize::from(fuel)].clone(),
            module: digest.to_string(),
        }
    }
}

/// The target triple of Lambda's arm64 environments.
pub const GRAVITON_TRIPLE: &str = "aarch64-unknown-linux-gnu";

/// The CPU features every Graviton Lambda runs on has (Graviton2, an Arm Neoverse N1, and
/// every later one), as Cranelift names them. Pointer authentication and the 8-bit matrix
/// instructions came with Graviton3, so they are left out.
const GRAVITON_FEATURES: [&str; 3] = ["has_lse", "has_fp16", "has_dotprod"];

/// Compiles for Lambda's arm64 with exactly [`GRAVITON_FEATURES`], rather than what the machine
/// reports: every Graviton then compiles the same code, under the same key, as
/// `wasm-lambda publish` does for it on any machine.
fn for_graviton(config: &mut wasmtime::Config) {
    if let Err(error) = config.target(GRAVITON_TRIPLE) {
        // Never expected: the triple is a constant.
        warn!(%error, "arm64 target not set");
        return;
    }
    for flag in GRAVITON_FEATURES {
        // SAFETY: the code compiled runs only where these features are: on an arm64 host that
        // has them (checked by the caller and again by wasmtime when the engine is made), or,
        // compiled elsewhere, where wasmtime's load checks each feature against the CPU.
        unsafe {
            config.cranelift_flag_enable(flag);
        }
    }
}

/// Whether this machine is an arm64 Linux one with every [`GRAVITON_FEATURES`].
fn graviton_host() -> bool {
    #[cfg(all(target_arch = "aarch64", target_os = "linux", target_env = "gnu"))]
    {
        std::arch::is_aarch64_feature_detected!("lse")
            && std::arch::is_aarch64_feature_detected!("fp16")
            && std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// An engine `wasm-lambda publish --target` compiles modules for, ahead of any environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CompileTarget {
    /// Lambda's arm64 (`aarch64-unknown-linux-gnu`), with every Graviton's CPU features.
    Graviton,
    /// The machine publishing, as the bootstrap's engine compiles on it: local runs, tests, x86
    /// deployments.
    Host,
}

impl CompileTarget {
    /// What `publish` compiles for when no `--target` is given: the template's architecture.
    pub const DEFAULT: &[CompileTarget] = &[CompileTarget::Graviton];

    /// The settings of a plugin's engine on this target.
    fn config(self, fuel: bool) -> wasmtime::Config {
        let mut config = plugin_engine_config(fuel);
        if self == CompileTarget::Graviton {
            for_graviton(&mut config);
        }
        config
    }

    fn arch(self) -> &'static str {
        match self {
            CompileTarget::Graviton => "aarch64",
            CompileTarget::Host => ARCH,
        }
    }

    /// The key the artifacts of module `digest` are kept under for this target.
    pub fn key(self, digest: &str, fuel: bool) -> ArtifactKey {
        match self {
            CompileTarget::Host => ArtifactKey::new(digest, fuel),
            CompileTarget::Graviton => {
                static ENGINES: OnceLock<[String; 2]> = OnceLock::new();
                let engines = ENGINES.get_or_init(|| {
                    [false, true].map(|fuel| engine_hash(&self.config(fuel), self.arch()))
                });
                ArtifactKey {
                    engine: engines[usize::from(fuel)].clone(),
                    module: digest.to_string(),
                }
            }
        }
    }

    /// Compiles `module` for this target, with or without fuel metering, into the bundle the
    /// store keeps under [`CompileTarget::key`]: the compile cache entry the target's bootstrap
    /// looks for, as wasmtime's cache would have written it there, and the module.
    pub fn bundle(self, module: &[u8], fuel: bool) -> Result<Bytes, String> {
        let wasm = wat::parse_bytes(module).map_err(|error| error.to_string())?;
        let engine =
            wasmtime::Engine::new(&self.config(fuel)).map_err(|error| format!("{error:#}"))?;
        let compiled = engine
            .precompile_module(&wasm)
            .map_err(|error| format!("{error:#}"))?;
        let entry = cache_entry(&compiled)?;
        let path = format!("modules/{}/{}", compiler_dir()?, entry_name(&engine, &wasm));
        Ok(bundle(&[
            (path, entry),
            (MODULE_ENTRY.to_string(), module.to_vec()),
        ]))
    }
}

impl std::str::FromStr for CompileTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<CompileTarget, String> {
        match text {
            GRAVITON_TRIPLE | "arm64" => Ok(CompileTarget::Graviton),
            "host" => Ok(CompileTarget::Host),
            other => Err(format!(
                "unknown target `{other}`: expected `{GRAVITON_TRIPLE}` (Lambda's arm64, every \
                 Graviton; also `arm64`) or `host` (this machine, as the bootstrap compiles here)"
            )),
        }
    }
}

impl fmt::Display for CompileTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompileTarget::Graviton => GRAVITON_TRIPLE,
            CompileTarget::Host => "host",
        })
    }
}

/// The name wasmtime's cache gives the entry of `wasm` compiled by `engine`: the SHA-256 of what
/// wasmtime hashes for it (the engine's compile settings, the module, no DWARF package, no
/// intrinsics), in URL-safe base64. The unit tests hold it to wasmtime's own.
fn entry_name(engine: &wasmtime::Engine, wasm: &[u8]) -> String {
    use base64::Engine as _;
    let mut hasher = Sha256Hasher(Sha256::new());
    (
        engine.precompile_compatibility_hash(),
        wasm,
        None::<&[u8]>,
        None::<&str>,
    )
        .hash(&mut hasher);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.0.finalize())
}

/// A cache entry's contents: the compiled object, compressed as wasmtime's cache does.
fn cache_entry(compiled: &[u8]) -> Result<Vec<u8>, String> {
    zstd::encode_all(compiled, 3).map_err(|error| format!("compressing the artifact: {error}"))
}

/// The directory wasmtime's cache keeps this wasmtime version's entries in (`wasmtime-<version>`
/// under `modules/`), found once by compiling an empty module into a cache of our own.
fn compiler_dir() -> Result<String, String> {
    static DIR: OnceLock<Result<String, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let scratch =
            tempfile::tempdir().map_err(|error| format!("a scratch directory: {error}"))?;
        let dir = scratch.path().to_path_buf();
        let found = (|| {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(&dir);
            let mut config = wasmtime::Config::new();
            config.cache(Some(
                wasmtime::Cache::new(cache).map_err(|error| error.to_string())?,
            ));
            let engine = wasmtime::Engine::new(&config).map_err(|error| error.to_string())?;
            wasmtime::Module::new(&engine, b"\0asm\x01\0\0\0").map_err(|e| e.to_string())?;
            let mut dirs = std::fs::read_dir(dir.join("modules")).map_err(|e| e.to_string())?;
            let found = dirs.next().ok_or("wasmtime's cache wrote nothing")?;
            Ok(found
                .map_err(|e| e.to_string())?
                .file_name()
                .to_string_lossy()
                .into_owned())
        })();
        found.map_err(|error: String| format!("wasmtime's compile cache: {error}"))
    })
    .clone()
}

impl fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.engine, self.module)
    }
}

/// The wasmtime settings every plugin is compiled with, before Extism adds its own.
///
/// An instance's memory is initialised eagerly (its data segments copied, not mapped
/// copy-on-write): the work then happens when the instance is made, which for `instance: fresh`
/// is off the critical path, instead of as page faults during its call. Its tables are filled
/// lazily, each element on its first use: a call uses a few of them, and filling them all (every
/// function a Rust module may call indirectly: 66 of `echo`'s, 134 of `hello`'s) was a sixth of
/// making a `fresh` instance.
///
/// No wasm backtrace is captured on a trap: the modules are stripped, so it would list only
/// function numbers, in every error message, at the cost of a stack walk per trap. So the
/// compiled code carries no map from its addresses back to the module's, which only backtraces
/// read: every cached function holds that much less.
pub fn wasmtime_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config
        .memory_init_cow(false)
        .table_lazy_init(true)
        .wasm_backtrace_max_frames(None)
        .generate_address_map(false);
    if graviton_host() {
        for_graviton(&mut config);
    }
    config
}

/// Instances of an `instance: fresh` function, one per call, come from a pool of its own engine
/// (wasmtime's pooling allocator) rather than each mapping and unmapping its memories: slots for
/// two instances (the one serving is dropped before the next is made; each is Extism's kernel and
/// the module, each with its memory and tables), reset between uses, never shared with another
/// function. A reset slot holds nothing of the instance before it: every page it wrote is zeroed,
/// as [`slot_reset`] says. The pool changes how memory is found, not the code: artifacts are the
/// same.
pub fn pool_instances(config: &mut wasmtime::Config, memory_limit: u64) {
    /// `SlotReset::Zero`: bytes of each memory zeroed in place rather than decommitted, whether
    /// written or not; a new instance then finds its hottest pages mapped. They are the lowest
    /// addresses: Extism's kernel allocates from the start of its memory, while a Rust module's
    /// stack ends at 1 MiB and its data and heap lie above. Measured (`examples/fresh_cost.rs`,
    /// `echo`): 27.3-28.0 µs per instance with 16 KiB, 29.5-30.1 with 64 KiB (zeroing pages no
    /// call touched), 31.5-32.0 with none (a fault for each of the kernel's pages).
    const KEEP_RESIDENT: usize = 16 << 10;
    /// `Scan` and `Read`: at most this many bytes of each memory's pages that hold anything are
    /// zeroed in place, the rest handed back. Zeroing a page costs less than handing it back:
    /// the `madvise`, its TLB flush on the other cores, and the fault that maps it again.
    const FOUND_RESIDENT: usize = 1 << 20;
    const SLOTS: u32 = 4;
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(SLOTS)
        .total_memories(SLOTS)
        .total_tables(SLOTS)
        .total_gc_heaps(SLOTS / 2)
        .total_stacks(1)
        .total_component_instances(1)
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        .table_elements(100_000)
        .max_core_instance_size(16 << 20)
        .max_memory_size(memory_limit.min(4 << 30) as usize)
        .max_unused_warm_slots(SLOTS);
    // The vendored wasmtime's `Auto` reads the page map (its patch 0002).
    let (scan, resident) = match slot_reset() {
        SlotReset::Scan => (wasmtime::Enabled::Yes, FOUND_RESIDENT),
        SlotReset::Read => (wasmtime::Enabled::Auto, FOUND_RESIDENT),
        SlotReset::Zero => (wasmtime::Enabled::No, KEEP_RESIDENT),
    };
    pool.pagemap_scan(scan)
        .linear_memory_keep_resident(resident)
        .table_keep_resident(resident);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
}

/// How a pooled instance slot is reset between instances (`SLOT_RESET`): which pages of its
/// memories and tables are zeroed in place, the rest being handed back to the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotReset {
    /// The kernel's `PAGEMAP_SCAN` ioctl (Linux 6.7) reports the pages that hold anything,
    /// present or swapped out (the vendored wasmtime's patch 0001): one call per memory.
    Scan,
    /// The page map is read entry by entry (`/proc/self/pagemap`, 8 bytes a page) for the same
    /// pages, where the ioctl is missing (the vendored wasmtime's patch 0002).
    Read,
    /// The first 16 KiB of each memory are zeroed, whatever they hold, and the rest handed
    /// back: a `madvise`, whose TLB flush interrupts the other cores, and a fault for each page
    /// the next instance touches.
    Zero,
}

impl std::str::FromStr for SlotReset {
    type Err = String;

    fn from_str(text: &str) -> Result<SlotReset, String> {
        match text {
            "scan" => Ok(SlotReset::Scan),
            "read" => Ok(SlotReset::Read),
            "zero" => Ok(SlotReset::Zero),
            _ => Err("expected `scan`, `read` or `zero`".to_string()),
        }
    }
}

impl fmt::Display for SlotReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SlotReset::Scan => "scan",
            SlotReset::Read => "read",
            SlotReset::Zero => "zero",
        })
    }
}

static SLOT_RESET: OnceLock<SlotReset> = OnceLock::new();

/// Sets how slots are reset (`SLOT_RESET`), before the first pool is made, and returns the way
/// in effect: a way this kernel lacks falls back to the next one, and once a pool was made,
/// nothing changes.
pub fn choose_slot_reset(wanted: SlotReset) -> SlotReset {
    *SLOT_RESET.get_or_init(|| best_slot_reset(wanted))
}

/// How slots are reset in this process: as chosen, else the best this kernel has, each way
/// used only where a probe of the kernel finds exactly the written page among four of its own
/// (one written, one only read, one written then handed back, one never touched).
pub fn slot_reset() -> SlotReset {
    *SLOT_RESET.get_or_init(|| best_slot_reset(SlotReset::Scan))
}

fn best_slot_reset(wanted: SlotReset) -> SlotReset {
    // wasmtime's own check of the ioctl asks for every category, which an early kernel with
    // the ioctl may not know: the scan required there, no pool could be made.
    if wanted == SlotReset::Scan
        && wasmtime::PoolingAllocationConfig::is_pagemap_scan_available()
        && pagemap_finds_dirty_pages(SlotReset::Scan)
    {
        return SlotReset::Scan;
    }
    if wanted != SlotReset::Zero && pagemap_finds_dirty_pages(SlotReset::Read) {
        return SlotReset::Read;
    }
    SlotReset::Zero
}

/// Whether the kernel's page map, asked as the vendored wasmtime asks it when a pooled slot is
/// reset the `how` way, reports exactly the pages that hold data, on four pages of its own:
/// one written, one only read, one written then handed back, one never touched. The ioctl
/// must report the first only; a read of the entries must find the first two (a page only read
/// maps the shared zero page, which an unprivileged reader cannot tell from others) and not
/// the last two.
fn pagemap_finds_dirty_pages(how: SlotReset) -> bool {
    #[cfg(target_os = "linux")]
    {
        pagemap::probe(how)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = how;
        false
    }
}

#[cfg(target_os = "linux")]
mod pagemap {
    use std::os::fd::AsRawFd;

    const PAGE_IS_FILE: u64 = 1 << 2;
    const PAGE_IS_PRESENT: u64 = 1 << 3;
    const PAGE_IS_SWAPPED: u64 = 1 << 4;
    const PAGE_IS_PFNZERO: u64 = 1 << 5;

    /// `struct pm_scan_arg` of <linux/fs.h>.
    #[repr(C)]
    struct ScanArg {
        size: u64,
        flags: u64,
        start: u64,
        end: u64,
        walk_end: u64,
        vec: u64,
        vec_len: u64,
        max_pages: u64,
        category_inverted: u64,
        category_mask: u64,
        category_anyof_mask: u64,
        return_mask: u64,
    }

    /// `struct page_region` of <linux/fs.h>.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Region {
        start: u64,
        end: u64,
        categories: u64,
    }

    /// `_IOWR('f', 16, struct pm_scan_arg)`.
    const PAGEMAP_SCAN: u32 =
        (3 << 30) | ((size_of::<ScanArg>() as u32) << 16) | ((b'f' as u32) << 8) | 16;

    pub(super) fn probe(how: super::SlotReset) -> bool {
        use std::os::unix::fs::FileExt;

        let Ok(pagemap) = std::fs::File::open("/proc/self/pagemap") else {
            return false;
        };
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = 4 * page;
        // SAFETY: a new private anonymous mapping, unmapped below; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return false;
        }
        let base = base.cast::<u8>();
        let start = base as u64;
        // SAFETY: every access is inside the mapping made above, readable and writable.
        unsafe {
            // Small pages, whatever the system's transparent huge page setting: a huge page
            // would map all four at the first write.
            libc::madvise(base.cast(), len, libc::MADV_NOHUGEPAGE);
            base.write_volatile(1);
            let _ = base.add(page).read_volatile();
            base.add(2 * page).write_volatile(1);
            libc::madvise(base.add(2 * page).cast(), page, libc::MADV_DONTNEED);
        }
        let found: Option<Vec<(u64, u64)>> = match how {
            super::SlotReset::Scan => {
                let mut regions = [Region::default(); 4];
                let mut arg = ScanArg {
                    size: size_of::<ScanArg>() as u64,
                    flags: 0,
                    start,
                    end: start + len as u64,
                    walk_end: 0,
                    vec: regions.as_mut_ptr() as u64,
                    vec_len: regions.len() as u64,
                    max_pages: 0,
                    category_inverted: PAGE_IS_PFNZERO | PAGE_IS_FILE,
                    category_mask: PAGE_IS_PFNZERO | PAGE_IS_FILE,
                    category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                    return_mask: 0,
                };
                // SAFETY: `arg` and `regions` are what the ioctl reads and writes, alive
                // for the call.
                let count =
                    unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg) };
                (count >= 0).then(|| {
                    regions[..count as usize]
                        .iter()
                        .map(|r| (r.start, r.end))
                        .collect()
                })
            }
            super::SlotReset::Read => {
                // Bits 63 and 62 of an entry: present, swapped out.
                const HOLDS: u64 = (1 << 63) | (1 << 62);
                let mut bytes = [0u8; 32];
                let offset = start / page as u64 * 8;
                pagemap.read_exact_at(&mut bytes, offset).ok().map(|()| {
                    bytes
                        .chunks_exact(8)
                        .enumerate()
                        .filter(|(_, entry)| {
                            u64::from_ne_bytes((*entry).try_into().unwrap()) & HOLDS != 0
                        })
                        .map(|(i, _)| {
                            let at = start + (i * page) as u64;
                            (at, at + page as u64)
                        })
                        .collect()
                })
            }
            super::SlotReset::Zero => None,
        };
        // SAFETY: the mapping made above, no longer used.
        unsafe {
            libc::munmap(base.cast(), len);
        }
        let page = page as u64;
        let expected: &[(u64, u64)] = match how {
            super::SlotReset::Scan => &[(start, start + page)],
            _ => &[(start, start + page), (start + page, start + 2 * page)],
        };
        found.is_some_and(|found| found == expected)
    }
}

/// The settings of the engine Extism 1.30 builds in `CompiledPlugin::new` from
/// [`wasmtime_config`], with or without fuel metering: what a plugin's modules are compiled with.
pub fn plugin_engine_config(fuel: bool) -> wasmtime::Config {
    let mut config = wasmtime_config();
    config
        .epoch_interruption(true)
        .wasm_tail_call(true)
        .wasm_function_references(true)
        .wasm_gc(true)
        .consume_fuel(fuel);
    config
}

/// wasmtime's own compatibility hash (version, target, CPU features, compiler and engine
/// settings) of an engine made with `config`, for architecture `arch`, as 16 hex digits.
fn engine_hash(config: &wasmtime::Config, arch: &str) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    match wasmtime::Engine::new(config) {
        Ok(engine) => engine.precompile_compatibility_hash().hash(&mut hasher),
        // Never expected; the key then still separates what it can.
        Err(error) => error.to_string().hash(&mut hasher),
    }
    arch.hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// A `Hasher` that is the same in every process and Rust release, unlike std's.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

/// The compile cache's entries: path relative to the cache directory -> (size, modified).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing(BTreeMap<String, (u64, SystemTime)>);

/// A file's identity on disk: a write to it, or a new file in its place, changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    inode: u64,
    len: u64,
    changed: i64,
    changed_ns: i64,
}

impl Identity {
    fn of(path: &Path) -> Option<Identity> {
        let metadata = std::fs::symlink_metadata(path).ok()?;
        metadata.is_file().then(|| Identity {
            inode: metadata.ino(),
            len: metadata.len(),
            changed: metadata.ctime(),
            changed_ns: metadata.ctime_nsec(),
        })
    }
}

/// The cache entries this runtime wrote, by identity, and how many compiles are writing now
/// (their new entries are not recorded yet, so unknown entries are removed only when none is).
#[derive(Debug, Default)]
struct Ledger {
    known: BTreeMap<String, Identity>,
    compiling: usize,
}

/// The file the ledger is kept in, beside the kept modules.
const LEDGER_FILE: &str = "cache-ledger";

/// The compile cache directory, and whether uploads to the store still make sense.
#[derive(Debug)]
pub struct Artifacts {
    /// wasmtime's compile cache.
    dir: PathBuf,
    /// Modules, `<digest>.wasm`, and marks, `<digest>.compiled`.
    local: PathBuf,
    uploads: AtomicBool,
    ledger: Mutex<Ledger>,
}

impl Artifacts {
    /// Artifacts in wasmtime's cache directory `dir`, modules and marks in `local`.
    pub fn new(dir: &Path, local: &Path) -> Artifacts {
        let known = std::fs::read_to_string(local.join(LEDGER_FILE))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let path = fields.next()?.to_string();
                let mut number = || fields.next()?.parse::<i64>().ok();
                let identity = Identity {
                    inode: number()? as u64,
                    len: number()? as u64,
                    changed: number()?,
                    changed_ns: number()?,
                };
                Some((path, identity))
            })
            .collect();
        Artifacts {
            dir: dir.to_path_buf(),
            local: local.to_path_buf(),
            uploads: AtomicBool::new(true),
            ledger: Mutex::new(Ledger {
                known,
                compiling: 0,
            }),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // The ledger is rewritten whole under the lock; a panic leaves it consistent.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the identity of the entries `paths`, written by this runtime, and keeps the
    /// ledger on disk.
    fn record(&self, ledger: &mut Ledger, paths: &[String]) {
        for path in paths {
            match Identity::of(&self.dir.join(path)) {
                Some(identity) => ledger.known.insert(path.clone(), identity),
                None => ledger.known.remove(path),
            };
        }
        let text: String = ledger
            .known
            .iter()
            .map(|(path, id)| {
                format!(
                    "{path} {} {} {} {}\n",
                    id.inode, id.len, id.changed, id.changed_ns
                )
            })
            .collect();
        let temporary = self.local.join(format!("{LEDGER_FILE}.part"));
        let written = std::fs::create_dir_all(&self.local)
            .and_then(|()| std::fs::write(&temporary, text))
            .and_then(|()| std::fs::rename(&temporary, self.local.join(LEDGER_FILE)));
        if let Err(error) = written {
            debug!(%error, "compile cache ledger not written");
        }
    }

    /// Before a compile (which may load what the cache holds): removes every entry this runtime
    /// did not write, or that changed since, and returns what the cache then holds; the compile
    /// ends with [`Compiling::finish`], which records what it wrote.
    pub fn before_compile(self: &Arc<Self>) -> Compiling {
        let mut ledger = self.ledger();
        self.remove_irregular();
        let listing = self.listing();
        let mut kept = BTreeMap::new();
        for (path, stat) in listing.0 {
            let identity = Identity::of(&self.dir.join(&path));
            let known = ledger.known.get(&path);
            let trusted = identity.is_some() && identity.as_ref() == known;
            // An unknown entry may be one a compile in flight is writing.
            if trusted || (known.is_none() && ledger.compiling > 0) {
                kept.insert(path, stat);
                continue;
            }
            warn!(%path, "compile cache entry not written by this runtime (or changed since): removed");
            let _ = std::fs::remove_file(self.dir.join(&path));
            ledger.known.remove(&path);
        }
        ledger.compiling += 1;
        Compiling {
            artifacts: Arc::clone(self),
            before: Listing(kept),
            finished: false,
        }
    }

    /// The module with SHA-256 `digest`, if kept here and intact.
    pub fn module(&self, digest: &str) -> Option<Bytes> {
        let bytes = std::fs::read(self.local.join(format!("{digest}.wasm"))).ok()?;
        (hex::encode(Sha256::digest(&bytes)) == digest).then(|| Bytes::from(bytes))
    }

    /// Keeps the module with SHA-256 `digest` (already verified by the caller), unless the same
    /// bytes are kept already; whether they are.
    pub fn keep_module(&self, digest: &str, bytes: &[u8]) -> bool {
        let path = self.local.join(format!("{digest}.wasm"));
        if std::fs::read(&path).is_ok_and(|kept| kept == bytes) {
            return true;
        }
        // Two loads of one module may keep it at once (in two processes sharing the directory,
        // too): each writes a file of its own.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let write = WRITES.fetch_add(1, Ordering::Relaxed);
        let temporary = self
            .local
            .join(format!("{digest}.wasm.{}-{write}.part", std::process::id()));
        let written = std::fs::create_dir_all(&self.local)
            .and_then(|()| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(error) = &written {
            let _ = std::fs::remove_file(&temporary);
            debug!(%digest, %error, "module not kept locally");
        }
        written.is_ok()
    }

    /// Whether the compile cache holds the artifacts `key` (as far as we know: an entry lost
    /// since is simply compiled again).
    pub fn has_compiled(&self, key: &ArtifactKey) -> bool {
        self.mark(key).exists()
    }

    /// Marks the artifacts `key` as in the compile cache.
    pub fn mark_compiled(&self, key: &ArtifactKey) {
        let _ =
            std::fs::create_dir_all(&self.local).and_then(|()| std::fs::write(self.mark(key), b""));
    }

    fn mark(&self, key: &ArtifactKey) -> PathBuf {
        self.local
            .join(format!("{}-{}.compiled", key.module, key.engine))
    }

    /// Removes what under `modules/` is neither a directory of entries nor an entry file (a
    /// symbolic link, above all: wasmtime would follow it, and the ledger never sees through it).
    fn remove_irregular(&self) {
        let Ok(compilers) = std::fs::read_dir(self.dir.join("modules")) else {
            return;
        };
        for compiler in compilers.filter_map(Result::ok) {
            let Ok(kind) = compiler.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                warn!(path = %compiler.path().display(), "not a directory of compile cache entries: removed");
                let _ = std::fs::remove_file(compiler.path());
                continue;
            }
            let Ok(files) = std::fs::read_dir(compiler.path()) else {
                continue;
            };
            for file in files.filter_map(Result::ok) {
                let Ok(kind) = file.file_type() else { continue };
                if kind.is_file() {
                    continue;
                }
                warn!(path = %file.path().display(), "not a compile cache entry file: removed");
                let _ = if kind.is_dir() {
                    std::fs::remove_dir_all(file.path())
                } else {
                    std::fs::remove_file(file.path())
                };
            }
        }
    }

    /// The cache's entries: `modules/<compiler>/<hash>` files (not wasmtime's `.stats` and
    /// temporary files).
    pub fn listing(&self) -> Listing {
        let mut entries = BTreeMap::new();
        let Ok(compilers) = std::fs::read_dir(self.dir.join("modules")) else {
            return Listing(entries);
        };
        for compiler in compilers.filter_map(Result::ok) {
            let Ok(files) = std::fs::read_dir(compiler.path()) else {
                continue;
            };
            for file in files.filter_map(Result::ok) {
                let name = file.file_name().to_string_lossy().into_owned();
                let Ok(metadata) = file.metadata() else {
                    continue;
                };
                if name.contains('.') || !metadata.is_file() {
                    continue;
                }
                let path = format!("modules/{}/{name}", compiler.file_name().to_string_lossy());
                let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                entries.insert(path, (metadata.len(), modified));
            }
        }
        Listing(entries)
    }

    /// The entries added or rewritten since `before`.
    pub fn changed_since(&self, before: &Listing) -> Vec<String> {
        self.listing()
            .0
            .into_iter()
            .filter(|(path, now)| before.0.get(path) != Some(now))
            .map(|(path, _)| path)
            .collect()
    }

    /// Writes the store's entries `key` into the cache. Returns how many, and the module the
    /// bundle carries (unchecked: the caller compares it with the digest it expects).
    pub async fn download(&self, store: &dyn FunctionStore, key: &ArtifactKey) -> Downloaded {
        let bundle = match store.artifact_bundle(&key.to_string()).await {
            Ok(Some(bundle)) => bundle,
            Ok(None) => return Downloaded::default(),
            Err(error) => {
                debug!(%key, %error, "no compiled artifacts from the store");
                return Downloaded {
                    unanswered: Some(error.to_string()),
                    ..Downloaded::default()
                };
            }
        };
        let Some(entries) = unbundle(&bundle) else {
            warn!(%key, "compiled artifacts damaged (checksum mismatch); not used");
            return Downloaded::default();
        };
        let mut downloaded = Downloaded::default();
        for (path, bytes) in entries {
            if path == MODULE_ENTRY {
                downloaded.module = Some(Bytes::copy_from_slice(bytes));
                continue;
            }
            match self.write(&path, bytes) {
                Ok(()) => {
                    downloaded.entries += 1;
                    let mut ledger = self.ledger();
                    self.record(&mut ledger, std::slice::from_ref(&path));
                }
                Err(error) => warn!(%path, %error, "compiled artifact not written to the cache"),
            }
        }
        downloaded
    }

    /// Writes `bytes` at the relative `path`, atomically, refusing paths that leave the cache.
    fn write(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let parts: Vec<&str> = path.split('/').collect();
        let valid = parts.len() == 3
            && parts[0] == "modules"
            && parts
                .iter()
                .all(|p| !p.is_empty() && *p != "." && *p != "..");
        if !valid {
            return Err(std::io::Error::other(format!(
                "`{path}` is not a cache entry"
            )));
        }
        let target = self.dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temporary = target.with_extension("download");
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, &target)
    }

    /// Uploads the cache entries `paths` to the store as `key`, in one bundle with the module
    /// they were compiled from, so that a cold environment needs only the bundle. A refusal (the
    /// role may not write) stops uploads for the life of the process.
    pub async fn upload(
        &self,
        store: &dyn FunctionStore,
        key: &ArtifactKey,
        paths: &[String],
        module: &[u8],
    ) {
        if !self.uploads.load(Ordering::Relaxed) {
            return;
        }
        let mut entries: Vec<(String, Vec<u8>)> = paths
            .iter()
            .filter_map(|path| Some((path.clone(), std::fs::read(self.dir.join(path)).ok()?)))
            .collect();
        entries.push((MODULE_ENTRY.to_string(), module.to_vec()));
        match store
            .put_artifact_bundle(&key.to_string(), bundle(&entries))
            .await
        {
            Ok(()) => {
                info!(%key, entries = entries.len(), "compiled artifacts shared with the fleet")
            }
            Err(error) => {
                if self.uploads.swap(false, Ordering::Relaxed) {
                    warn!(%error, "compiled artifacts are not shared: the store refused them");
                }
            }
        }
    }
}

/// A compile in progress, from [`Artifacts::before_compile`].
#[derive(Debug)]
pub struct Compiling {
    artifacts: Arc<Artifacts>,
    before: Listing,
    finished: bool,
}

impl Compiling {
    /// The entries the compile wrote (none when it loaded an entry), recorded as this runtime's.
    pub fn finish(mut self) -> Vec<String> {
        self.finished = true;
        let artifacts = Arc::clone(&self.artifacts);
        let mut ledger = artifacts.ledger();
        let changed = artifacts.changed_since(&self.before);
        artifacts.record(&mut ledger, &changed);
        ledger.compiling = ledger.compiling.saturating_sub(1);
        changed
    }
}

impl Drop for Compiling {
    fn drop(&mut self) {
        // A compile given up on (its caller's deadline came): what it writes later is not
        // recorded, and is removed before a later compile.
        if !self.finished {
            let mut ledger = self.artifacts.ledger();
            ledger.compiling = ledger.compiling.saturating_sub(1);
        }
    }
}

/// What [`Artifacts::download`] got from the store.
#[derive(Debug, Default)]
pub struct Downloaded {
    /// Cache entries written.
    pub entries: usize,
    /// The module the entries were compiled from, as the bundle carries it.
    pub module: Option<Bytes>,
    /// Why the store gave no answer for the bundle, if it gave none.
    pub unanswered: Option<String>,
}

/// The bundle's entry holding the module itself (not a cache entry: those are
/// `modules/<compiler>/<hash>`).
const MODULE_ENTRY: &str = "module.wasm";

/// The first bytes of a bundle.
const MAGIC: &[u8] = b"wasm-lambda artifacts 1\n";

/// Cache entries (and the module) in one object: the magic line, then per entry the path's
/// length (u32, big endian), the path, the data's length (u64) and the data; last, the SHA-256
/// of all before it.
pub fn bundle(entries: &[(String, Vec<u8>)]) -> Bytes {
    let mut out = MAGIC.to_vec();
    for (path, data) in entries {
        out.extend_from_slice(&(path.len() as u32).to_be_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
        out.extend_from_slice(data);
    }
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    Bytes::from(out)
}

/// The entries of a bundle, or `None` if it is damaged.
pub fn unbundle(bundle: &[u8]) -> Option<Vec<(String, &[u8])>> {
    let (body, checksum) = bundle.split_at_checked(bundle.len().checked_sub(32)?)?;
    if Sha256::digest(body).as_slice() != checksum {
        return None;
    }
    let mut rest = body.strip_prefix(MAGIC)?;
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let (length, tail) = rest.split_first_chunk::<4>()?;
        let (path, tail) = tail.split_at_checked(u32::from_be_bytes(*length) as usize)?;
        let (length, tail) = tail.split_first_chunk::<8>()?;
        let (data, tail) =
            tail.split_at_checked(usize::try_from(u64::from_be_bytes(*length)).ok()?)?;
        entries.push((String::from_utf8(path.to_vec()).ok()?, data));
        rest = tail;
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_listed_and_changes_found() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::new(dir.path(), &dir.path().join("local"));
        assert_eq!(artifacts.listing(), Listing::default());
        artifacts.write("modules/cranelift-43/abc", b"one").unwrap();
        std::fs::write(dir.path().join("modules/cranelift-43/abc.stats"), "x").unwrap();
        let before = artifacts.listing();
        assert_eq!(before.0.len(), 1);
        artifacts.write("modules/cranelift-43/def", b"two").unwrap();
        assert_eq!(
            artifacts.changed_since(&before),
            ["modules/cranelift-43/def"]
        );
        for bad in ["../escape", "modules/../../x", "modules/a", "other/a/b"] {
            assert!(artifacts.write(bad, b"x").is_err(), "{bad}");
        }
    }

    #[test]
    fn artifacts_are_keyed_by_module_and_engine_settings() {
        let plain = ArtifactKey::new("ab12", false);
        assert_eq!(plain, ArtifactKey::new("ab12", false));
        assert_eq!(plain.engine.len(), 16);
        assert!(plain.engine.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(plain.to_string(), format!("{}/ab12", plain.engine));
        // Fuel metering compiles other code.
        assert_ne!(plain.engine, ArtifactKey::new("ab12", true).engine);
        assert_ne!(plain, ArtifactKey::new("cd34", false));
    }

    /// A module with a function, a memory and data: real code to compile.
    const MODULE: &str = r#"(module (memory (export "memory") 1) (data (i32.const 0) "hi")
        (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

    /// The entry (relative path, compressed contents) of a bundle.
    fn entry_of(bundle: &[u8]) -> (String, Vec<u8>) {
        let entries = unbundle(bundle).unwrap();
        assert_eq!(entries.len(), 2, "an entry and the module");
        assert_eq!(entries[1].0, MODULE_ENTRY);
        (entries[0].0.clone(), entries[0].1.to_vec())
    }

    #[test]
    fn a_bundle_for_the_host_holds_the_entry_wasmtime_itself_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir.path());
        for fuel in [false, true] {
            let mut config = plugin_engine_config(fuel);
            config.cache(Some(wasmtime::Cache::new(cache.clone()).unwrap()));
            let engine = wasmtime::Engine::new(&config).unwrap();
            let before = Artifacts::new(dir.path(), &dir.path().join("local")).listing();
            wasmtime::Module::new(&engine, MODULE).unwrap();
            let written =
                Artifacts::new(dir.path(), &dir.path().join("local")).changed_since(&before);
            assert_eq!(written.len(), 1, "{written:?}");

            let bundle = CompileTarget::Host.bundle(MODULE.as_bytes(), fuel).unwrap();
            let (path, entry) = entry_of(&bundle);
            assert_eq!(path, written[0], "the name wasmtime's cache looks up");
            let ours = zstd::decode_all(&entry[..]).unwrap();
            let theirs = zstd::decode_all(&std::fs::read(dir.path().join(&path)).unwrap()[..]);
            assert_eq!(
                ours,
                theirs.unwrap(),
                "the compiled object wasmtime's cache holds"
            );
            assert_eq!(
                CompileTarget::Host.key("ab12", fuel),
                ArtifactKey::new("ab12", fuel)
            );
        }
    }

    #[test]
    fn an_arm64_bundle_is_keyed_apart_and_refused_by_another_engine() {
        let arm = CompileTarget::Graviton
            .bundle(MODULE.as_bytes(), false)
            .unwrap();
        let (path, entry) = entry_of(&arm);
        let object = zstd::decode_all(&entry[..]).unwrap();
        assert_eq!(&object[..4], b"\x7fELF");
        assert_eq!(
            u16::from_le_bytes([object[18], object[19]]),
            183,
            "EM_AARCH64"
        );
        // Every Graviton feature, and no feature a Graviton2 lacks, is what it was compiled for.
        let arm_key = CompileTarget::Graviton.key("ab12", false);
        assert_eq!(arm_key, CompileTarget::Graviton.key("ab12", false));
        assert_ne!(arm_key, CompileTarget::Graviton.key("ab12", true));
        if !graviton_host() {
            assert_ne!(arm_key, ArtifactKey::new("ab12", false));
            let (host_path, _) = entry_of(
                &CompileTarget::Host
                    .bundle(MODULE.as_bytes(), false)
                    .unwrap(),
            );
            assert_ne!(path, host_path, "another cache entry");
            let engine = wasmtime::Engine::new(&plugin_engine_config(false)).unwrap();
            // SAFETY: wasmtime checks the object's target before using any of it.
            let refused = unsafe { wasmtime::Module::deserialize(&engine, &object) };
            let error = format!("{:#}", refused.expect_err("refused"));
            assert!(error.contains("aarch64"), "{error}");
        }
    }

    #[test]
    fn pooled_instances_run_the_same_compiled_code() {
        for fuel in [false, true] {
            let plain = wasmtime::Engine::new(&plugin_engine_config(fuel)).unwrap();
            let mut config = plugin_engine_config(fuel);
            pool_instances(&mut config, 64 << 20);
            let pooled = wasmtime::Engine::new(&config).unwrap();
            let wasm = wat::parse_str(MODULE).unwrap();
            assert_eq!(entry_name(&plain, &wasm), entry_name(&pooled, &wasm));
            // And it runs: a pooled instance, twice in its slot.
            let module = wasmtime::Module::new(&pooled, &wasm).unwrap();
            for _ in 0..2 {
                let mut store = wasmtime::Store::new(&pooled, ());
                if fuel {
                    store.set_fuel(1_000_000).unwrap();
                }
                store.set_epoch_deadline(1);
                let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
                let add = instance
                    .get_typed_func::<(i32, i32), i32>(&mut store, "add")
                    .unwrap();
                assert_eq!(add.call(&mut store, (2, 3)).unwrap(), 5);
            }
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_slot_reset_falls_back_to_what_the_kernel_has() {
        // Reading the page map works on every Linux with /proc; the ioctl where it exists
        // and answers as the reset expects.
        assert_eq!(best_slot_reset(SlotReset::Read), SlotReset::Read);
        assert_eq!(best_slot_reset(SlotReset::Zero), SlotReset::Zero);
        let scan = best_slot_reset(SlotReset::Scan);
        assert_eq!(
            scan == SlotReset::Scan,
            wasmtime::PoolingAllocationConfig::is_pagemap_scan_available()
                && pagemap_finds_dirty_pages(SlotReset::Scan),
            "{scan}"
        );
        assert_ne!(scan, SlotReset::Zero);
    }

    #[test]
    fn compile_targets_are_named_as_publish_takes_them() {
        for (text, target) in [
            ("aarch64-unknown-linux-gnu", CompileTarget::Graviton),
            ("arm64", CompileTarget::Graviton),
            ("host", CompileTarget::Host),
        ] {
            assert_eq!(text.parse::<CompileTarget>(), Ok(target));
        }
        assert_eq!(CompileTarget::Graviton.to_string(), GRAVITON_TRIPLE);
        let error = "x86_64-unknown-linux-gnu"
            .parse::<CompileTarget>()
            .unwrap_err();
        assert!(
            error.contains("unknown target `x86_64-unknown-linux-gnu`"),
            "{error}"
        );
        assert!(error.contains("`host`"), "{error}");
    }

    #[test]
    fn bundles_round_trip_and_refuse_damage() {
        let entries = vec![
            ("modules/c/one".to_string(), b"first".to_vec()),
            ("modules/c/two".to_string(), Vec::new()),
        ];
        let packed = bundle(&entries);
        let unpacked = unbundle(&packed).unwrap();
        assert_eq!(unpacked.len(), 2);
        assert_eq!(
            (unpacked[0].0.as_str(), unpacked[0].1),
            ("modules/c/one", &b"first"[..])
        );
        let mut damaged = packed.to_vec();
        damaged[MAGIC.len() + 5] ^= 1;
        assert!(unbundle(&damaged).is_none());
        assert!(unbundle(b"short").is_none());
        assert_eq!(unbundle(&bundle(&[])).unwrap().len(), 0);
    }

    #[test]
    fn modules_are_kept_by_digest_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::new(dir.path(), &dir.path().join("local"));
        let digest = hex::encode(Sha256::digest(b"\0asm"));
        assert!(artifacts.module(&digest).is_none());
        artifacts.keep_module(&digest, b"\0asm");
        assert_eq!(artifacts.module(&digest).unwrap(), &b"\0asm"[..]);
        std::fs::write(dir.path().join(format!("local/{digest}.wasm")), b"tampered").unwrap();
        assert!(
            artifacts.module(&digest).is_none(),
            "a damaged copy is not used"
        );
        let key = ArtifactKey::new(&digest, false);
        assert!(!artifacts.has_compiled(&key));
        artifacts.mark_compiled(&key);
        assert!(artifacts.has_compiled(&key));
        assert!(!artifacts.has_compiled(&ArtifactKey::new(&digest, true)));
    }
}
