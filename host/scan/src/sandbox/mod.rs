//! The WebAssembly sandbox that runs untrusted analyzers.
//!
//! Deny by default: an allow-list linker (no sockets; empty environment and arguments; no
//! inherited stdio), the layer tree mounted read-only at `/`, and six independent limits,
//! because each stops a different attack (measured in `docs/` and the hostile test suite):
//!
//! | limit | stops |
//! |---|---|
//! | memory per linear memory, memories, tables | memory bombs, `memory.grow` to 4 GiB |
//! | wall time: epoch deadline + a timeout around the call | loops (epoch) and guests blocked in host calls (timeout) |
//! | hostcall fuel | output amplification: many list items pointing at one large string |
//! | resource-table entries | handle exhaustion (every open file is a host fd) |
//! | stderr bytes | log floods |
//! | returned packages | honest but absurd outputs |
//!
//! Components are compiled once and cached as `.cwasm` in a directory only the host writes
//! (see [`cache`]); each analyzer is type-checked and import-resolved once into an
//! `InstancePre`, and every call gets a fresh `Store`. Instances come from a pooling
//! allocator whose slots are reset in place after each call (see [`KEEP_RESIDENT`]), so
//! that a call's fixed cost stays in the tens of microseconds.

mod cache;
pub mod compiler;
mod linker;
pub mod v0_1;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use bulkhead_model::{Analysis, AnalyzerMeta, Origin};

/// The WIT package versions this host can run, newest first. A new minor version adds a
/// `vX_Y` bindings module and an adapter to the current model types.
pub const WIT_VERSIONS: &[&str] = &["0.1.0"];

/// A component compiled ahead of time: the artifact and the key
/// ([`compiler::artifact_key`]) of the engine and component it was compiled for.
#[derive(Clone, Copy, Debug)]
pub struct Ahead {
    pub key: &'static str,
    pub artifact: &'static [u8],
}

/// The wasmtime release the sandbox runs on (from Cargo.lock, by build.rs).
pub const WASMTIME_VERSION: &str = env!("BULKHEAD_WASMTIME_VERSION");

/// The epoch tick. Deadlines are counted in ticks; each tick the guest also yields to
/// the executor so that one busy analyzer cannot starve the others.
const TICK: Duration = Duration::from_millis(10);

/// Every limit a guest runs under. All are configurable (`[sandbox]` in the config file);
/// the defaults are safe for a multi-tenant service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest size of one linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget for one call (instantiate + analyze), in milliseconds.
    pub time_ms: u64,
    /// Bytes the host may lift out of the guest in one call (strings and lists, host-side
    /// size), which also bounds the returned analysis.
    pub hostcall_fuel: usize,
    /// Largest number of packages accepted from one call.
    pub max_packages: usize,
    /// Live WASI resources (open files, streams, directory iterators).
    pub max_handles: usize,
    /// Bytes of the guest's stderr kept; further writes fail.
    pub stderr_bytes: usize,
    /// Largest wasm stack, in bytes (engine-wide).
    pub max_wasm_stack: usize,
    /// Largest number of table elements.
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            time_ms: 10_000,
            hostcall_fuel: 64 << 20,
            max_packages: 200_000,
            max_handles: 1024,
            stderr_bytes: 64 << 10,
            max_wasm_stack: compiler::DEFAULT_MAX_WASM_STACK,
            table_elements: 100_000,
        }
    }
}

impl Limits {
    fn time(&self) -> Duration {
        Duration::from_millis(self.time_ms)
    }
}

/// Why a module was refused at load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{origin}: not a WebAssembly component ({reason}); build analyzers with `cargo build --target wasm32-wasip2`"
    )]
    NotAComponent { origin: Origin, reason: String },
    #[error(
        "{origin}: imports `{import}`, which analyzers may not use (allowed: {allowed}); remove the code that needs it (std::net pulls in wasi:sockets)"
    )]
    ForbiddenImport {
        origin: Origin,
        import: String,
        allowed: String,
    },
    #[error(
        "{origin}: built against bulkhead:analyzer@{found}, but this host runs {supported}; rebuild it with a matching bulkhead-analyzer-sdk"
    )]
    WitVersion {
        origin: Origin,
        found: String,
        supported: String,
    },
    #[error("{origin}: does not implement the bulkhead:analyzer world: {reason}")]
    BadWorld { origin: Origin, reason: String },
    #[error("{origin}: metadata() failed: {source}")]
    Metadata { origin: Origin, source: RunError },
    #[error("{origin}: invalid metadata: {reason}")]
    BadMetadata { origin: Origin, reason: String },
    #[error("{origin}: cannot compile the component: {reason}")]
    Compile { origin: Origin, reason: String },
    #[error("component cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
}

/// Why a call into an analyzer did not produce a result. Each variant names the limit
/// that stopped it, so that a diagnostic can say so.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error("stopped after {limit_ms} ms (time limit)")]
    TimedOut { limit_ms: u64 },
    #[error("tried to grow a memory beyond {limit_bytes} bytes (memory limit)")]
    OutOfMemory { limit_bytes: usize },
    #[error("exhausted its {limit_bytes}-byte wasm stack (stack limit)")]
    StackOverflow { limit_bytes: usize },
    #[error("returned more data than the {limit_bytes}-byte output limit (hostcall fuel)")]
    OutputTooLarge { limit_bytes: usize },
    #[error("returned {count} packages, more than the limit of {limit}")]
    TooManyPackages { count: usize, limit: usize },
    #[error("opened more than {limit} files or streams at once (handle limit)")]
    TooManyHandles { limit: usize },
    #[error("trapped: {message}")]
    Trapped { message: String },
    #[error("host error: {message}")]
    Host { message: String },
}

impl RunError {
    /// A stable code for reports: `analyzer-timeout`, `analyzer-memory`, …
    pub fn code(&self) -> &'static str {
        match self {
            RunError::TimedOut { .. } => "analyzer-timeout",
            RunError::OutOfMemory { .. } => "analyzer-memory",
            RunError::StackOverflow { .. } => "analyzer-stack",
            RunError::OutputTooLarge { .. } => "analyzer-output-too-large",
            RunError::TooManyPackages { .. } => "analyzer-too-many-packages",
            RunError::TooManyHandles { .. } => "analyzer-handles",
            RunError::Trapped { .. } => "analyzer-trap",
            RunError::Host { .. } => "analyzer-host-error",
        }
    }
}

/// What an analyzer said about a layer, when it ran to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Analysis(Analysis),
    NotApplicable,
    ParseError {
        file: String,
        line: u32,
        message: String,
    },
    IoError(String),
}

/// The result of one call, with what the guest wrote to stderr.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<Verdict, RunError>,
    /// The guest's stderr (a panic message, usually), at most `stderr_bytes`, lossily
    /// decoded. Untrusted text: sanitise before printing it to a terminal.
    pub stderr: String,
    /// True when the guest wrote more than `stderr_bytes` to stderr.
    pub stderr_truncated: bool,
    pub elapsed: Duration,
}

/// A component that passed every load check, ready to instantiate.
pub struct Loaded {
    pub meta: AnalyzerMeta,
    pub origin: Origin,
    /// Hex sha256 of the module bytes.
    pub sha256: String,
    /// The `bulkhead:analyzer` version the component was built against.
    pub wit_version: String,
    pre: v0_1::AnalyzerPre<Ctx>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("meta", &self.meta)
            .field("origin", &self.origin)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// `name@version`, the way diagnostics name an analyzer.
    pub fn id(&self) -> String {
        format!("{}@{}", self.meta.name, self.meta.version)
    }
}

/// An analyzer instantiated in its own store over one tree, not yet called.
#[doc(hidden)]
pub struct Instance {
    store: Store<Ctx>,
    bindings: v0_1::Analyzer,
    /// Set when made by [`Sandbox::instantiate`]; [`Sandbox::analyze`] keeps its own.
    stderr: Option<MemoryOutputPipe>,
    /// When the call's time is up, for the timeout around host calls.
    deadline: tokio::time::Instant,
    /// The pool slot, released after the store (declared last: dropped last).
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").finish_non_exhaustive()
    }
}

fn outcome(
    result: Result<Verdict, RunError>,
    stderr: &MemoryOutputPipe,
    stderr_bytes: usize,
    started: Instant,
) -> Outcome {
    let bytes = stderr.contents();
    Outcome {
        result,
        stderr: String::from_utf8_lossy(&bytes).into_owned(),
        stderr_truncated: bytes.len() >= stderr_bytes,
        elapsed: started.elapsed(),
    }
}

/// The per-call state a guest can reach (through WASI) and the host's limit bookkeeping.
pub struct Ctx {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    started: Instant,
    budget: Duration,
    timed_out: Arc<AtomicBool>,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Memory and table caps that remember which one was hit, so that the error can say so
/// (wasmtime's `StoreLimits` only traps).
struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    memory_hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_hit = true;
            return Err(wasmtime::Error::msg("memory limit"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.memory_hit = true;
            return Err(wasmtime::Error::msg("table limit"));
        }
        Ok(true)
    }

    // A Rust component has one memory and a handful of instances and tables.
    fn instances(&self) -> usize {
        32
    }
    fn tables(&self) -> usize {
        16
    }
    fn memories(&self) -> usize {
        2
    }
}

/// The engine, the allow-list linker and the component cache.
pub struct Sandbox {
    engine: Engine,
    linker: wasmtime::component::Linker<Ctx>,
    cache: cache::ComponentCache,
    limits: Limits,
    /// An empty, read-only directory mounted while `metadata()` runs: nothing of any
    /// layer is visible to an analyzer before it is asked to analyze one.
    empty_root: tempfile::TempDir,
    /// One permit per pool slot: a call waits for a free slot instead of failing.
    slots: Arc<tokio::sync::Semaphore>,
}

/// Calls that can run at once (instances in the pool). Analyzers run on the scan's worker
/// threads and block them, so more than a few per core only wait; further calls queue.
const POOL_SLOTS: u32 = 64;

/// Bytes of a slot's linear memory kept mapped (and zeroed in place) between calls. A
/// fresh page costs a page fault and a zeroing by the kernel on first touch; without this
/// a 3.5 MB rpmdb took 4.7 ms instead of 2.5 ms, twice native. Memory touched beyond it is
/// given back. Enough for the databases of typical images (the analysis of a 3.5 MB
/// rpmdb touches about 8 MiB).
const KEEP_RESIDENT: usize = 16 << 20;

/// Idle slots that keep their memory; with `KEEP_RESIDENT` this bounds what an idle
/// process holds to about 256 MiB.
const WARM_SLOTS: u32 = 16;

/// The pooling allocator: every call's memory, tables and fiber stack come from slots
/// reserved once, and a slot's pages are reset in place when its store is dropped
/// instead of being unmapped, so that the next call does not page-fault them in again.
fn pool(limits: &Limits) -> PoolingAllocationConfig {
    let mut p = PoolingAllocationConfig::new();
    // What one component may have; the store's `Limiter` enforces the same caps, so
    // that a guest over them gets the limiter's error, not the pool's.
    let memories = 2;
    let tables = 16;
    let cores = 32;
    p.total_component_instances(POOL_SLOTS)
        .max_core_instances_per_component(cores)
        .total_core_instances(POOL_SLOTS * cores)
        .max_memories_per_component(memories)
        .max_memories_per_module(memories)
        .total_memories(POOL_SLOTS * memories)
        .max_tables_per_component(tables)
        .max_tables_per_module(tables)
        .total_tables(POOL_SLOTS * tables)
        .table_elements(limits.table_elements)
        .max_memory_size(limits.memory_bytes)
        .total_stacks(POOL_SLOTS)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .max_unused_warm_slots(WARM_SLOTS)
        .pagemap_scan(Enabled::Auto);
    p
}

/// The engine, pooled when the pool's address space can be reserved (`POOL_SLOTS` slots of
/// a 4 GiB reservation each); where it cannot (a `ulimit -v`, a small address space)
/// every call maps its own memory instead, which is slower but the same sandbox.
fn engine(config: &Config, limits: &Limits) -> wasmtime::Result<Engine> {
    let mut pooled = config.clone();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(limits)));
    match Engine::new(&pooled) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!("cannot reserve the instance pool, running unpooled: {e:#}");
            Engine::new(config)
        }
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// An engine with epoch interruption, the allow-list linker, and the component cache
    /// in `cache_dir` (created with mode 0700).
    pub fn new(cache_dir: &Path, limits: Limits) -> Result<Self, LoadError> {
        let config = compiler::config(limits.max_wasm_stack);
        let engine = engine(&config, &limits).map_err(|e| LoadError::Cache {
            path: cache_dir.to_path_buf(),
            reason: format!("cannot create the wasm engine: {e}"),
        })?;
        // One ticker per engine; it holds a weak reference so that it ends with the engine.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("bulkhead-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| LoadError::Cache {
                path: cache_dir.to_path_buf(),
                reason: format!("cannot start the epoch thread: {e}"),
            })?;
        let linker = linker::allow_list(&engine).map_err(|e| LoadError::Cache {
            path: cache_dir.to_path_buf(),
            reason: format!("cannot build the linker: {e:#}"),
        })?;
        let cache = cache::ComponentCache::open(cache_dir)?;
        let empty_root = tempfile::Builder::new()
            .prefix("bulkhead-empty-")
            .tempdir()
            .map_err(|e| LoadError::Cache {
                path: std::env::temp_dir(),
                reason: format!("cannot create a temp dir: {e}"),
            })?;
        Ok(Sandbox {
            engine,
            linker,
            cache,
            limits,
            empty_root,
            slots: Arc::new(tokio::sync::Semaphore::new(POOL_SLOTS as usize)),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validate, compile (or load from the cache) and prepare a component, then ask it for
    /// its metadata. Every check that can be done before a scan is done here, so that a
    /// bad module is refused with a message that names what is wrong.
    pub async fn load(&self, bytes: &[u8], origin: Origin) -> Result<Loaded, LoadError> {
        self.load_with(bytes, origin, None).await
    }

    /// [`Sandbox::load`] with `ahead`, the same component compiled ahead of time (by
    /// build.rs, for the built-in analyzers): used when it fits this engine.
    pub async fn load_with(
        &self,
        bytes: &[u8],
        origin: Origin,
        ahead: Option<&Ahead>,
    ) -> Result<Loaded, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotAComponent {
                origin,
                reason: "no wasm header".into(),
            });
        }
        // Layer 0x0001 is a component; version 1 is a core module.
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(LoadError::NotAComponent {
                origin,
                reason: "it is a core wasm module (wasm32-unknown-unknown or wasip1)".into(),
            });
        }
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        let component = self
            .cache
            .component(&self.engine, bytes, &sha256, &origin, ahead)?;
        let wit_version = check_imports(&self.engine, &component, &origin)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(v0_1::AnalyzerPre::new)
            .map_err(|e| LoadError::BadWorld {
                origin: origin.clone(),
                reason: format!("{e:#}"),
            })?;

        let empty = self.empty_root.path().to_path_buf();
        let stderr = MemoryOutputPipe::new(self.limits.stderr_bytes);
        let raw = self
            .call_metadata(&pre, &empty, &stderr)
            .await
            .map_err(|source| LoadError::Metadata {
                origin: origin.clone(),
                source,
            })?;
        let meta = v0_1::meta_from(raw).map_err(|reason| LoadError::BadMetadata {
            origin: origin.clone(),
            reason,
        })?;
        Ok(Loaded {
            meta,
            origin,
            sha256,
            wit_version,
            pre,
        })
    }

    /// Run `analyzer` over the tree at `root`, mounted read-only at `/`.
    pub async fn analyze(&self, analyzer: &Loaded, root: &Path) -> Outcome {
        let started = Instant::now();
        let stderr = MemoryOutputPipe::new(self.limits.stderr_bytes);
        let result = match self.instantiate_in(analyzer, root, &stderr).await {
            Ok(mut instance) => self.call_analyze(&mut instance).await,
            Err(e) => Err(e),
        };
        outcome(result, &stderr, self.limits.stderr_bytes, started)
    }

    /// Create a store over `root` and instantiate `analyzer` in it without calling it:
    /// what every call pays before the guest runs. Benchmarks time this,
    /// [`Sandbox::analyze_instance`] and dropping the instance apart; [`Sandbox::analyze`]
    /// is the three in a row.
    #[doc(hidden)]
    pub async fn instantiate(&self, analyzer: &Loaded, root: &Path) -> Result<Instance, RunError> {
        let stderr = MemoryOutputPipe::new(self.limits.stderr_bytes);
        let mut instance = self.instantiate_in(analyzer, root, &stderr).await?;
        instance.stderr = Some(stderr);
        Ok(instance)
    }

    /// Call `analyze` on an instance made by [`Sandbox::instantiate`], lift and validate
    /// its result. `elapsed` covers this call only.
    #[doc(hidden)]
    pub async fn analyze_instance(&self, instance: &mut Instance) -> Outcome {
        let started = Instant::now();
        let stderr = instance
            .stderr
            .clone()
            .unwrap_or_else(|| MemoryOutputPipe::new(self.limits.stderr_bytes));
        let result = self.call_analyze(instance).await;
        outcome(result, &stderr, self.limits.stderr_bytes, started)
    }

    /// The latest moment a call may still run: the epoch callback stops guest code at the
    /// time limit; this timeout also stops a guest that is blocked inside a host call
    /// (sleeping, polling), which epochs cannot interrupt.
    fn backstop(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.limits.time() + TICK * 20
    }

    async fn instantiate_in(
        &self,
        analyzer: &Loaded,
        root: &Path,
        stderr: &MemoryOutputPipe,
    ) -> Result<Instance, RunError> {
        let slot = self.slot().await?;
        // The budget starts once a slot is free, as the epoch callback's does.
        let deadline = self.backstop();
        let mut store = self.store(root, stderr)?;
        let made =
            tokio::time::timeout_at(deadline, analyzer.pre.instantiate_async(&mut store)).await;
        let bindings = self.settle(&store, made)?;
        Ok(Instance {
            store,
            bindings,
            stderr: None,
            deadline,
            _slot: slot,
        })
    }

    async fn call_analyze(&self, instance: &mut Instance) -> Result<Verdict, RunError> {
        let deadline = instance.deadline;
        let store = &mut instance.store;
        let called =
            tokio::time::timeout_at(deadline, instance.bindings.call_analyze(&mut *store, "/"))
                .await;
        let raw = self.settle(store, called)?;
        v0_1::verdict_from(raw, self.limits.max_packages)
    }

    /// Instantiate in a fresh store with every limit set and call `metadata`.
    async fn call_metadata(
        &self,
        pre: &v0_1::AnalyzerPre<Ctx>,
        root: &Path,
        stderr: &MemoryOutputPipe,
    ) -> Result<v0_1::RawMetadata, RunError> {
        let _slot = self.slot().await?;
        let deadline = self.backstop();
        let mut store = self.store(root, stderr)?;
        let work = async {
            let bindings = pre.instantiate_async(&mut store).await?;
            bindings.call_metadata(&mut store).await
        };
        let done = tokio::time::timeout_at(deadline, work).await;
        self.settle(&store, done)
    }

    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, RunError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| RunError::Host {
                message: format!("sandbox closed: {e}"),
            })
    }

    /// Map the end of a bounded guest step to its value or to the limit that stopped it.
    fn settle<T>(
        &self,
        store: &Store<Ctx>,
        done: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, RunError> {
        match done {
            Err(_elapsed) => Err(RunError::TimedOut {
                limit_ms: self.limits.time_ms,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let data = store.data();
                Err(classify(
                    e,
                    &self.limits,
                    data.limiter.memory_hit,
                    data.timed_out.load(Ordering::Relaxed),
                ))
            }
        }
    }

    fn store(&self, root: &Path, stderr: &MemoryOutputPipe) -> Result<Store<Ctx>, RunError> {
        let limits = &self.limits;
        // Deny by default: no inherited environment, arguments, stdio or network; stdin is
        // empty, stdout discarded, stderr bounded.
        let mut wasi = WasiCtxBuilder::new();
        // File reads run on this thread instead of spawn_blocking: scans already run on
        // their own worker threads, and a thread hop per host call cost 0.5 ms of a
        // 0.7 ms apk analysis. It must be set before `preopened_dir`: the mount copies the
        // setting when it is made, and every file opened through it inherits the copy.
        wasi.allow_blocking_current_thread(true);
        wasi.preopened_dir(root, "/", FsPerms::ReadOnly)
            .map_err(|e| RunError::Host {
                message: format!("cannot mount {}: {e:#}", root.display()),
            })?;
        wasi.stderr(stderr.clone());
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_handles);
        let ctx = Ctx {
            wasi: wasi.build(),
            table,
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
                memory_hit: false,
            },
            started: Instant::now(),
            budget: limits.time(),
            timed_out: Arc::new(AtomicBool::new(false)),
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| &mut ctx.limiter);
        store.set_hostcall_fuel(limits.hostcall_fuel);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let data = ctx.data();
            if data.started.elapsed() >= data.budget {
                data.timed_out.store(true, Ordering::Relaxed);
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// Map a wasmtime error to the limit that caused it.
fn classify(e: wasmtime::Error, limits: &Limits, memory_hit: bool, timed_out: bool) -> RunError {
    if timed_out {
        return RunError::TimedOut {
            limit_ms: limits.time_ms,
        };
    }
    if memory_hit {
        return RunError::OutOfMemory {
            limit_bytes: limits.memory_bytes,
        };
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        match trap {
            wasmtime::Trap::StackOverflow => {
                return RunError::StackOverflow {
                    limit_bytes: limits.max_wasm_stack,
                };
            }
            wasmtime::Trap::Interrupt => {
                return RunError::TimedOut {
                    limit_ms: limits.time_ms,
                };
            }
            _ => {}
        }
    }
    if e.downcast_ref::<wasmtime::component::ResourceTableError>()
        .is_some()
    {
        return RunError::TooManyHandles {
            limit: limits.max_handles,
        };
    }
    let message = format!("{e:#}");
    if message.contains("hostcall") || message.contains("too much data is being copied") {
        return RunError::OutputTooLarge {
            limit_bytes: limits.hostcall_fuel,
        };
    }
    if message.contains("resource table has no free keys") {
        return RunError::TooManyHandles {
            limit: limits.max_handles,
        };
    }
    RunError::Trapped { message }
}

/// Check every import against the allow-list and find the contract version the component
/// was built against. Done before linking so that the error names the import.
fn check_imports(
    engine: &Engine,
    component: &Component,
    origin: &Origin,
) -> Result<String, LoadError> {
    let ty = component.component_type();
    let mut wit_version = None;
    for (name, _) in ty.imports(engine) {
        if let Some(rest) = name.strip_prefix("bulkhead:analyzer/") {
            let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("");
            if !WIT_VERSIONS.iter().any(|v| same_minor(v, version)) {
                return Err(LoadError::WitVersion {
                    origin: origin.clone(),
                    found: version.to_string(),
                    supported: WIT_VERSIONS.join(", "),
                });
            }
            wit_version = Some(version.to_string());
            continue;
        }
        if !linker::ALLOWED_IMPORTS.iter().any(|p| name.starts_with(p)) {
            return Err(LoadError::ForbiddenImport {
                origin: origin.clone(),
                import: name.to_string(),
                allowed: linker::ALLOWED_IMPORTS.join(", "),
            });
        }
    }
    // A world that uses no type from `types` has no such import; it is still 0.1.
    Ok(wit_version.unwrap_or_else(|| WIT_VERSIONS[0].to_string()))
}

/// `0.1.0` and `0.1.3` are compatible (additive patch releases); `0.2.0` is not.
fn same_minor(a: &str, b: &str) -> bool {
    let minor = |v: &str| {
        let mut it = v.splitn(3, '.');
        (it.next().map(str::to_string), it.next().map(str::to_string))
    };
    let (ma, mb) = (minor(a), minor(b));
    ma.0.is_some() && ma == mb
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled artifacts cached in `dir`.
    #[cfg(feature = "ahead-of-time")]
    fn artifacts(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// build.rs compiled every built-in analyzer for this engine: loading them compiles
    /// nothing (the cache stays empty), while an artifact keyed for another engine is not
    /// used: the component is compiled and cached instead.
    #[cfg(feature = "ahead-of-time")]
    #[tokio::test]
    async fn the_ahead_of_time_artifacts_fit_this_engine_and_others_are_not_used() {
        let home = tempfile::tempdir().expect("tempdir");
        let cache = home.path().join("components");
        let sandbox = Sandbox::new(&cache, Limits::default()).expect("sandbox");
        for (package, bytes, ahead) in crate::analyzers::BUILTIN {
            let ahead = ahead.as_ref().unwrap_or_else(|| {
                panic!("{package}: no artifact compiled ahead of time (BULKHEAD_NO_AHEAD_OF_TIME set, or a cross build?)")
            });
            sandbox
                .load_with(bytes, Origin::BuiltIn, Some(ahead))
                .await
                .unwrap_or_else(|e| panic!("{package}: {e}"));
        }
        assert_eq!(artifacts(&cache), 0, "a built-in analyzer was compiled");

        let (package, bytes, ahead) = &crate::analyzers::BUILTIN[0];
        let other = Ahead {
            key: "00000000000000000000000000000000",
            artifact: ahead.as_ref().map_or(&[][..], |a| a.artifact),
        };
        let loaded = sandbox
            .load_with(bytes, Origin::BuiltIn, Some(&other))
            .await
            .unwrap_or_else(|e| panic!("{package}: {e}"));
        assert!(!loaded.meta.name.is_empty());
        assert_eq!(artifacts(&cache), 1, "compiled and cached instead");
    }

    #[test]
    fn patch_versions_are_compatible() {
        assert!(same_minor("0.1.0", "0.1.7"));
        assert!(!same_minor("0.1.0", "0.2.0"));
        assert!(!same_minor("0.1.0", ""));
    }
}
