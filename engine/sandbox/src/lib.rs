//! The sandbox: one shared wasmtime [`Engine`], plugins compiled once and pre-linked, and each
//! call run in a fresh [`Store`] with its own limits.
//!
//! ABI (core module, no WASI):
//! - exports `memory`, `alloc(len: i32) -> i32`, `score(ptr: i32, len: i32) -> i64` and
//!   `manifest() -> i64`; `score` and `manifest` return `(out_ptr << 32) | out_len`;
//! - may import from module `plaudit` only: `log(ptr: i32, len: i32)` (UTF-8, captured per
//!   call up to [`Limits::log_bytes`]) and `random(moment: i32) -> i64` (the next number of
//!   moment `moment`'s own splitmix64 stream, seeded by the caller's per-moment seed, never the
//!   clock or OS entropy).
//!
//! What the bytes mean is [`plaudit_sdk::plugin::wire`]'s business, not this module's.
//!
//! Determinism: fuel is the CPU bound, so a verdict replays identically. The epoch deadline is
//! only a wall-clock backstop (a ticker thread owned by the [`PluginHost`]); a failure it causes
//! is [`PluginFailure::Timeout`] and is recorded, never recomputed: the plugins pass collects
//! every call it stopped, the log step records them (`Change::PluginCallsTimedOut`), and a
//! replay, which makes exactly the same calls, fails those again without running them and runs
//! every other call without the backstop ([`Plugin::call_with`]). So a replay never costs more
//! than the live scoring did.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use plaudit_sdk::plugin::wire::Stream;
use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, FuncType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, ValType,
};

/// Instance slots in the engine's pool: calls that can run at the same time. A call waits for a
/// free one ([`Gate`]) rather than fail, so that however many organisations call plugins at once
/// (live scoring, replays at start, what-ifs), none of their calls fails for another's load;
/// each organisation holds at most three at a time (its worker, its one background job, its
/// opening), so waiting happens only with more than 85 organisations calling at once.
pub const POOL_SLOTS: u32 = 256;

/// Modules compiled at once, engine-wide. Compiling holds tens to hundreds of bytes of memory
/// per byte of wasm for a moment (Cranelift; more for pathological modules): one at a time
/// bounds it, whatever the number of organisations uploading, replaying or opening.
pub const COMPILES_AT_ONCE: usize = 1;

/// The largest linear memory any organisation may allow its plugins (see `[plugins]`).
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// The largest module any organisation may allow (see `[plugins] module_kb`): the upload
/// route's body limit.
pub const MAX_MODULE_BYTES: usize = 4 << 20;

/// How often the host's ticker advances the engine epoch.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The module name of the host imports.
pub const HOST_MODULE: &str = "plaudit";

/// Per-plugin limits. [`Default`] is the set docs/design.md gives (derived from Shopify Functions' published limits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Plugins an organisation may have installed at once (the host itself runs any number).
    pub installed: usize,
    /// Fuel units a call may consume (instantiation, `alloc` and `score` together).
    pub fuel: u64,
    /// Linear memory cap, in bytes. A `memory.grow` past it traps (rather than returning -1),
    /// so the call fails with [`PluginFailure::MemoryLimit`].
    pub memory_bytes: usize,
    /// Largest accepted module, in bytes.
    pub module_bytes: usize,
    /// Largest input buffer handed to `score`, in bytes.
    pub input_bytes: usize,
    /// Largest output buffer `score` may return, in bytes.
    pub output_bytes: usize,
    /// Log bytes kept per call; the rest is dropped and flagged.
    pub log_bytes: usize,
    /// Wasm stack bound, in bytes. Engine-wide: only the value given to [`PluginHost::new`]
    /// applies; the one passed to [`PluginHost::compile`] is ignored.
    pub max_stack_bytes: usize,
    /// Wall-clock backstop per call (epoch deadline), rounded up to the ticker's 10 ms.
    pub wall_clock: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            installed: 8,
            fuel: 11_000_000,
            memory_bytes: 10 << 20,
            module_bytes: 256 << 10,
            input_bytes: 128 << 10,
            output_bytes: 20 << 10,
            log_bytes: 1 << 10,
            max_stack_bytes: 512 << 10,
            wall_clock: Duration::from_secs(2),
        }
    }
}

impl Limits {
    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis().max(1);
        let ticks = self.wall_clock.as_millis().div_ceil(tick).max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

/// Why a module was refused at upload ([`PluginHost::compile`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("the sandbox engine could not be configured: {message}")]
    Engine { message: String },
    #[error("module is {len} bytes, over the {limit}-byte limit")]
    ModuleTooLarge { len: usize, limit: usize },
    #[error("not a valid WebAssembly module: {message}")]
    Invalid { message: String },
    #[error(
        "module imports `{module}.{name}`, which the host does not provide (only `plaudit.log: \
         (i32, i32) -> ()` and `plaudit.random: (i32) -> i64`)"
    )]
    UnknownImport { module: String, name: String },
    #[error("module must export `{name}` as {expected}")]
    MissingExport { name: String, expected: &'static str },
    #[error("module could not be linked: {message}")]
    Link { message: String },
}

/// Why one call failed. The plugin fails this call only; the host and other calls carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("input is {len} bytes, over the {limit}-byte limit")]
    InputTooLarge { len: usize, limit: usize },
    #[error("ran out of fuel ({limit} units): the plugin does too much work per call, or loops")]
    OutOfFuel { limit: u64 },
    #[error("memory limit of {limit} bytes reached (memory.grow refused or initial memory too big)")]
    MemoryLimit { limit: usize },
    #[error("wasm stack exhausted ({limit} bytes): recursion too deep")]
    StackOverflow { limit: usize },
    #[error("wall-clock deadline passed (backstop; fuel should normally stop a call first)")]
    Timeout,
    #[error("plugin trapped: {message}")]
    Trap { message: String },
    #[error("output is {len} bytes, over the {limit}-byte limit")]
    OutputTooLarge { len: usize, limit: usize },
    #[error("plugin broke the ABI: {reason}")]
    BadOutput { reason: String },
    #[error("plugin reported an error: {message}")]
    Guest { message: String },
    #[error("host error: {message}")]
    Internal { message: String },
}

/// A failed call: why, and what the plugin logged before it failed (a panic message, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failure}")]
pub struct CallFailed {
    pub failure: PluginFailure,
    pub logs: String,
    /// Fuel consumed before the call stopped.
    pub fuel_used: u64,
}

/// A successful call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutput {
    /// The bytes `score` returned.
    pub output: Vec<u8>,
    /// Fuel consumed by the whole call (deterministic for the same module, input and seed).
    pub fuel_used: u64,
    /// What the plugin logged, at most [`Limits::log_bytes`] bytes.
    pub logs: String,
    /// Whether some log output was dropped at the limit.
    pub logs_truncated: bool,
}

/// The per-call store data: limits, the deterministic random streams and the log buffer.
struct CallState {
    limiter: Limiter,
    /// Seeds of the moments of the call, by index; `stream` is the current moment's.
    seeds: Vec<u64>,
    stream: Option<(i32, Stream)>,
    logs: String,
    log_limit: usize,
    logs_truncated: bool,
}

impl CallState {
    fn new(limits: &Limits, seeds: &[u64]) -> Self {
        Self {
            limiter: Limiter::new(limits.memory_bytes),
            seeds: seeds.to_vec(),
            stream: None,
            logs: String::new(),
            log_limit: limits.log_bytes,
            logs_truncated: false,
        }
    }

    fn append_log(&mut self, bytes: &[u8]) {
        let room = self.log_limit.saturating_sub(self.logs.len());
        if bytes.len() > room {
            self.logs_truncated = true;
        }
        if room == 0 {
            return;
        }
        let take = bytes.get(..room).unwrap_or(bytes);
        let text = String::from_utf8_lossy(take);
        // Lossy decoding can widen invalid bytes; cut back to the limit on a char boundary.
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end < text.len() {
            self.logs_truncated = true;
        }
        self.logs.push_str(&text[..end]);
    }
}

/// Store limits, remembering whether the memory cap was what stopped the guest.
struct Limiter {
    inner: StoreLimits,
    memory_limit: usize,
    memory_refused: bool,
}

impl Limiter {
    fn new(memory_limit: usize) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .table_elements(1 << 16)
                .instances(1)
                .memories(1)
                .tables(1)
                .trap_on_grow_failure(true)
                .build(),
            memory_limit,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_refused = true;
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Advances the engine epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Result<Self, PluginError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("plaudit-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Engine { message: format!("cannot start the epoch ticker: {e}") })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panicked ticker has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// A counting gate: at most `capacity` holders at once; others wait for a free place.
#[derive(Debug)]
pub(crate) struct Gate {
    held: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    capacity: usize,
}

/// A place held in a [`Gate`], given back when dropped.
pub(crate) struct Place<'a>(&'a Gate);

impl Gate {
    fn new(capacity: usize) -> Gate {
        Gate { held: std::sync::Mutex::new(0), freed: std::sync::Condvar::new(), capacity }
    }

    /// Waits for a free place and takes it.
    fn enter(&self) -> Place<'_> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *held >= self.capacity {
            held = self.freed.wait(held).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *held += 1;
        Place(self)
    }

    /// Places held now, and the capacity.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (*self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner), self.capacity)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut held = self.0.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *held -= 1;
        drop(held);
        self.0.freed.notify_one();
    }
}

/// What the process's sandboxes hold now: instance slots in use and their capacity, modules
/// being compiled and how many may be at once (for `/metrics`).
pub fn usage() -> SandboxUsage {
    let hosts = HOSTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut usage = SandboxUsage::default();
    for host in hosts.iter() {
        let (used, capacity) = host.slots.usage();
        usage.instances += used;
        usage.instance_capacity += capacity;
    }
    (usage.compiling, usage.compile_capacity) = COMPILES.usage();
    usage
}

/// See [`usage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SandboxUsage {
    pub instances: usize,
    pub instance_capacity: usize,
    pub compiling: usize,
    pub compile_capacity: usize,
}

/// The engine-wide compile gate ([`COMPILES_AT_ONCE`]).
static COMPILES: std::sync::LazyLock<Gate> = std::sync::LazyLock::new(|| Gate::new(COMPILES_AT_ONCE));

/// The process's hosts, one per stack bound ([`PluginHost::shared`]).
static HOSTS: std::sync::Mutex<Vec<Arc<PluginHost>>> = std::sync::Mutex::new(Vec::new());

/// The sandbox host: one engine and linker shared by every plugin.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    max_stack_bytes: usize,
    /// The engine's instance slots ([`POOL_SLOTS`]): a call holds one while it runs.
    slots: Arc<Gate>,
    _ticker: EpochTicker,
    /// Modules compiled, by the SHA-256 of their bytes: the same module installed in several
    /// organisations, replayed, restored or run by a what-if is compiled once.
    compiled: std::sync::Mutex<Vec<([u8; 32], Module)>>,
}

/// Compiled modules a host keeps (the most recent); a module is at most a few MB compiled.
const COMPILED_KEPT: usize = 32;

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost").field("max_stack_bytes", &self.max_stack_bytes).finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Builds the engine (fuel, epoch backstop, `limits.max_stack_bytes` of wasm stack; no WASI,
    /// no memory64, multi-memory, relaxed SIMD or tail calls) and links the `plaudit` imports.
    pub fn new(limits: &Limits) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.max_stack_bytes)
            .wasm_memory64(false)
            .wasm_multi_memory(false)
            .wasm_relaxed_simd(false)
            .wasm_tail_call(false);
        // A pool of instance slots, reused call after call: a fresh instance then costs no
        // mmap/munmap of its memory (measured: instantiation was 57 us a call without it).
        // The pool bounds how many calls run at once, engine-wide; a call waits for a free slot
        // (`Gate`) instead of failing past it.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(POOL_SLOTS)
            .total_memories(POOL_SLOTS)
            .total_tables(POOL_SLOTS)
            .max_memory_size(MAX_MEMORY_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine { message: error_message(&e) })?;
        let mut linker = Linker::new(&engine);
        link_host_imports(&mut linker).map_err(|e| PluginError::Engine { message: error_message(&e) })?;
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Self {
            engine,
            linker,
            max_stack_bytes: limits.max_stack_bytes,
            slots: Arc::new(Gate::new(POOL_SLOTS as usize)),
            _ticker: ticker,
            compiled: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The process's host for `limits.max_stack_bytes` (the one engine-wide setting), started
    /// on first use and shared by every organisation after.
    pub fn shared(limits: &Limits) -> Result<Arc<PluginHost>, PluginError> {
        let mut hosts = HOSTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(host) = hosts.iter().find(|h| h.max_stack_bytes == limits.max_stack_bytes) {
            return Ok(Arc::clone(host));
        }
        let host = Arc::new(PluginHost::new(limits)?);
        hosts.push(Arc::clone(&host));
        Ok(host)
    }

    /// `wasm` compiled, from the cache if it was compiled before.
    fn module(&self, wasm: &[u8]) -> Result<Module, PluginError> {
        use sha2::Digest;
        let hash: [u8; 32] = sha2::Sha256::digest(wasm).into();
        let lock = || self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, module)) = lock().iter().find(|(h, _)| *h == hash) {
            return Ok(module.clone());
        }
        let module = {
            let _compiling = COMPILES.enter();
            // Compiled meanwhile by whoever held the gate before us?
            if let Some((_, module)) = lock().iter().find(|(h, _)| *h == hash) {
                return Ok(module.clone());
            }
            Module::new(&self.engine, wasm).map_err(|e| PluginError::Invalid { message: error_message(&e) })?
        };
        let mut compiled = lock();
        if compiled.len() >= COMPILED_KEPT {
            compiled.remove(0);
        }
        compiled.push((hash, module.clone()));
        Ok(module)
    }

    /// Compiles `wasm` into the host's cache, so that a [`PluginHost::compile`] (or `load`) of
    /// the same bytes after it only checks and links: for callers that compile away from a
    /// thread others wait on. Checks nothing `compile` does not check again.
    pub fn precompile(&self, wasm: &[u8], limits: &Limits) -> Result<(), PluginError> {
        if wasm.len() > limits.module_bytes {
            return Err(PluginError::ModuleTooLarge { len: wasm.len(), limit: limits.module_bytes });
        }
        self.module(wasm).map(drop)
    }

    /// Validates and compiles a module once, checks its imports and exports against the ABI,
    /// and pre-links it so each call only instantiates.
    pub fn compile(&self, name: &str, wasm: &[u8], limits: Limits) -> Result<Plugin, PluginError> {
        if wasm.len() > limits.module_bytes {
            return Err(PluginError::ModuleTooLarge { len: wasm.len(), limit: limits.module_bytes });
        }
        let module = self.module(wasm)?;
        check_imports(&module)?;
        check_exports(&module)?;
        let pre = self.linker.instantiate_pre(&module).map_err(|e| PluginError::Link { message: error_message(&e) })?;
        Ok(Plugin {
            name: name.to_owned(),
            engine: self.engine.clone(),
            slots: Arc::clone(&self.slots),
            pre,
            deadline_ticks: limits.deadline_ticks(),
            max_stack_bytes: self.max_stack_bytes,
            limits,
        })
    }
}

/// A compiled, pre-linked plugin. Each [`Plugin::call`] runs in a fresh store, so nothing in
/// the guest's memory survives from one call to the next.
pub struct Plugin {
    name: String,
    engine: Engine,
    /// The engine's instance slots: each call holds one.
    slots: Arc<Gate>,
    pre: InstancePre<CallState>,
    limits: Limits,
    deadline_ticks: u64,
    max_stack_bytes: usize,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// A call that stopped: either a wasmtime error to classify, or an already typed failure.
enum Stop {
    Wasm(wasmtime::Error),
    Failure(PluginFailure),
}

impl From<wasmtime::Error> for Stop {
    fn from(e: wasmtime::Error) -> Self {
        Self::Wasm(e)
    }
}

impl From<PluginFailure> for Stop {
    fn from(f: PluginFailure) -> Self {
        Self::Failure(f)
    }
}

impl Plugin {
    /// The name given at compile time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits this plugin runs under.
    /// The module's imports, as `module.name`.
    pub fn imports(&self) -> Vec<String> {
        self.pre.module().imports().map(|i| format!("{}.{}", i.module(), i.name())).collect()
    }

    /// The module's exports, by name.
    pub fn exports(&self) -> Vec<String> {
        self.pre.module().exports().map(|e| e.name().to_string()).collect()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `score` on `input` in a fresh store; `seeds[i]` seeds `plaudit.random(i)`.
    pub fn call(&self, input: &[u8], seeds: &[u64]) -> Result<CallOutput, CallFailed> {
        self.call_with(input, seeds, true)
    }

    /// [`Plugin::call`], with or without the wall-clock backstop: a replay runs without it (fuel
    /// bounds the call), so that it never depends on the clock; the calls that passed it live
    /// are recorded in the log and fail again without running.
    pub fn call_with(&self, input: &[u8], seeds: &[u64], backstop: bool) -> Result<CallOutput, CallFailed> {
        let too_large = CallFailed {
            failure: PluginFailure::InputTooLarge { len: input.len(), limit: self.limits.input_bytes },
            logs: String::new(),
            fuel_used: 0,
        };
        if input.len() > self.limits.input_bytes {
            return Err(too_large);
        }
        let input_len = i32::try_from(input.len()).map_err(|_| too_large)?;
        self.in_store(seeds, backstop, |plugin, store| plugin.run(store, input, input_len))
    }

    /// Runs the `manifest` export in a fresh store (under the same limits as a call, but for
    /// the wall-clock backstop: fuel bounds it, and a short backstop on a busy machine would
    /// refuse a good module) and returns the bytes it points at.
    pub fn manifest(&self) -> Result<CallOutput, CallFailed> {
        self.in_store(&[], false, |plugin, store| {
            let instance = plugin.pre.instantiate(&mut *store)?;
            let manifest = instance.get_typed_func::<(), i64>(&mut *store, "manifest")?;
            let packed = manifest.call(&mut *store, ())?;
            plugin.read_output(store, &instance, packed)
        })
    }

    fn in_store(
        &self,
        seeds: &[u64],
        backstop: bool,
        body: impl FnOnce(&Self, &mut Store<CallState>) -> Result<Vec<u8>, Stop>,
    ) -> Result<CallOutput, CallFailed> {
        let _slot = self.slots.enter();
        let mut store = Store::new(&self.engine, CallState::new(&self.limits, seeds));
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(self.limits.fuel).map_err(|e| CallFailed {
            failure: PluginFailure::Internal { message: error_message(&e) },
            logs: String::new(),
            fuel_used: 0,
        })?;
        // Without the backstop: ticks for longer than any process lives (fuel stops the call).
        store.set_epoch_deadline(if backstop { self.deadline_ticks } else { 1 << 40 });

        let result = body(self, &mut store);
        let fuel_used = self.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        match result {
            Ok(output) => {
                let state = store.data_mut();
                Ok(CallOutput {
                    output,
                    fuel_used,
                    logs: std::mem::take(&mut state.logs),
                    logs_truncated: state.logs_truncated,
                })
            }
            Err(stop) => {
                let failure = match stop {
                    Stop::Failure(failure) => failure,
                    Stop::Wasm(error) => self.classify(&error, store.data()),
                };
                Err(CallFailed { failure, logs: std::mem::take(&mut store.data_mut().logs), fuel_used })
            }
        }
    }

    /// The bytes at `(ptr << 32) | len`, checked against the output limit and the memory.
    fn read_output(
        &self,
        store: &mut Store<CallState>,
        instance: &wasmtime::Instance,
        packed: i64,
    ) -> Result<Vec<u8>, Stop> {
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| bad_output("the `memory` export is not a memory".into()))?;
        let packed = packed as u64;
        let out_ptr = (packed >> 32) as u32;
        let out_len = packed as u32;
        let len = out_len as usize;
        if len > self.limits.output_bytes {
            return Err(PluginFailure::OutputTooLarge { len, limit: self.limits.output_bytes }.into());
        }
        let data = memory.data(&*store);
        let out =
            (out_ptr as usize).checked_add(len).and_then(|end| data.get(out_ptr as usize..end)).ok_or_else(|| {
                bad_output(format!("returned ptr {out_ptr} len {out_len}, outside the {}-byte memory", data.len()))
            })?;
        Ok(out.to_vec())
    }

    fn run(&self, store: &mut Store<CallState>, input: &[u8], input_len: i32) -> Result<Vec<u8>, Stop> {
        let instance = self.pre.instantiate(&mut *store)?;
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| bad_output("the `memory` export is not a memory".into()))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "alloc")?;
        let score = instance.get_typed_func::<(i32, i32), i64>(&mut *store, "score")?;

        let in_ptr = alloc.call(&mut *store, input_len)?;
        let dest = guest_range(memory.data_size(&*store), in_ptr, input_len).ok_or_else(|| {
            bad_output(format!(
                "alloc({input_len}) returned {in_ptr}, outside the {}-byte memory",
                memory.data_size(&*store)
            ))
        })?;
        memory
            .data_mut(&mut *store)
            .get_mut(dest)
            .ok_or_else(|| bad_output("input range out of bounds".into()))?
            .copy_from_slice(input);

        let packed = score.call(&mut *store, (in_ptr, input_len))?;
        self.read_output(store, &instance, packed)
    }

    fn classify(&self, error: &wasmtime::Error, state: &CallState) -> PluginFailure {
        if state.limiter.memory_refused {
            return PluginFailure::MemoryLimit { limit: self.limits.memory_bytes };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => PluginFailure::OutOfFuel { limit: self.limits.fuel },
            Some(Trap::StackOverflow) => PluginFailure::StackOverflow { limit: self.max_stack_bytes },
            Some(Trap::Interrupt) => PluginFailure::Timeout,
            Some(trap) => PluginFailure::Trap { message: trap.to_string() },
            None => PluginFailure::Trap { message: error_message(error) },
        }
    }
}

fn bad_output(reason: String) -> PluginFailure {
    PluginFailure::BadOutput { reason }
}

/// `ptr..ptr+len` as a range inside a memory of `size` bytes, if it fits.
fn guest_range(size: usize, ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize)?;
    (end <= size).then_some(start..end)
}

/// An error and its causes, on one line.
fn error_message(error: &wasmtime::Error) -> String {
    let mut message = String::new();
    for (i, cause) in error.chain().enumerate() {
        if i > 0 {
            message.push_str(": ");
        }
        message.push_str(&cause.to_string());
    }
    message
}

/// Fuel a host import costs the guest, besides the call itself: what the host's work takes in
/// the time a unit of fuel buys in guest code (measured: about 0.1 ns a unit, 6.5 ns a
/// `random`). Without it a loop of host calls ran 0.85 s to a billion fuel against 0.1 s for
/// a loop of guest code, so fuel no longer bounded a call's time, and a replay (which runs
/// calls without the wall-clock backstop) could take far longer than the live scoring did.
const HOST_CALL_FUEL: u64 = 64;

/// Takes `cost` fuel from the call; a call that has less is left with none, and stops at its
/// next instruction, out of fuel.
fn charge(caller: &mut Caller<'_, CallState>, cost: u64) -> wasmtime::Result<()> {
    let left = caller.get_fuel()?;
    caller.set_fuel(left.saturating_sub(cost))
}

fn link_host_imports(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        HOST_MODULE,
        "log",
        |mut caller: Caller<'_, CallState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            charge(&mut caller, HOST_CALL_FUEL + u64::from(len.max(0) as u32))?;
            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                wasmtime::bail!("plaudit.log: the plugin exports no memory");
            };
            let (data, state) = memory.data_and_store_mut(&mut caller);
            let Some(bytes) = guest_range(data.len(), ptr, len).and_then(|r| data.get(r)) else {
                wasmtime::bail!("plaudit.log: ptr {ptr} len {len} is outside guest memory");
            };
            state.append_log(bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "random",
        |mut caller: Caller<'_, CallState>, moment: i32| -> wasmtime::Result<i64> {
            charge(&mut caller, HOST_CALL_FUEL)?;
            let state = caller.data_mut();
            if let Some((current, stream)) = &mut state.stream
                && *current == moment
            {
                return Ok(stream.next_u64() as i64);
            }
            let Some(&seed) = usize::try_from(moment).ok().and_then(|i| state.seeds.get(i)) else {
                wasmtime::bail!("plaudit.random({moment}): the call has {} moments", state.seeds.len());
            };
            let mut stream = Stream::new(seed);
            let n = stream.next_u64();
            state.stream = Some((moment, stream));
            Ok(n as i64)
        },
    )?;
    Ok(())
}

/// The host imports and their signatures, as (name, params, results).
const HOST_IMPORTS: &[(&str, &[&str], &[&str])] = &[("log", &["i32", "i32"], &[]), ("random", &["i32"], &["i64"])];

fn val_name(ty: &ValType) -> &'static str {
    match ty {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::V128 => "v128",
        ValType::Ref(_) => "ref",
    }
}

fn signature_is(ty: &FuncType, params: &[&str], results: &[&str]) -> bool {
    ty.params().map(|p| val_name(&p)).eq(params.iter().copied())
        && ty.results().map(|r| val_name(&r)).eq(results.iter().copied())
}

fn check_imports(module: &Module) -> Result<(), PluginError> {
    for import in module.imports() {
        let known = import.module() == HOST_MODULE
            && HOST_IMPORTS.iter().any(|(name, params, results)| {
                *name == import.name()
                    && matches!(import.ty(), ExternType::Func(ref f) if signature_is(f, params, results))
            });
        if !known {
            return Err(PluginError::UnknownImport {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            });
        }
    }
    Ok(())
}

fn check_exports(module: &Module) -> Result<(), PluginError> {
    let missing = |name: &str, expected: &'static str| PluginError::MissingExport { name: name.to_owned(), expected };
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        _ => return Err(missing("memory", "a 32-bit, unshared memory")),
    }
    let funcs: [(&str, &[&str], &[&str], &'static str); 3] = [
        ("alloc", &["i32"], &["i32"], "func (i32) -> i32"),
        ("score", &["i32", "i32"], &["i64"], "func (i32, i32) -> i64"),
        ("manifest", &[], &["i64"], "func () -> i64"),
    ];
    for (name, params, results, expected) in funcs {
        match module.get_export(name) {
            Some(ExternType::Func(f)) if signature_is(&f, params, results) => {}
            _ => return Err(missing(name, expected)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin whose behaviour is picked by the first input byte: 0 (or empty input) echoes,
    /// the others misbehave. One module, so isolation can be checked on the same `Plugin`.
    const MOODY: &str = r#"
(module
  (import "plaudit" "log" (func $log (param i32 i32)))
  (import "plaudit" "random" (func $random (param i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $p))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))
  (func $recurse (param $n i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "score") (param $ptr i32) (param $len i32) (result i64)
    (local $mode i32) (local $i i32)
    (if (i32.eqz (local.get $len))
      (then (return (call $pack (local.get $ptr) (i32.const 0)))))
    (local.set $mode (i32.load8_u (local.get $ptr)))
    ;; 1: infinite loop
    (if (i32.eq (local.get $mode) (i32.const 1))
      (then (loop $spin (br $spin))))
    ;; 2: memory bomb, then give up
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        (unreachable)))
    ;; 3: unbounded recursion
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then (drop (call $recurse (i32.const 0)))))
    ;; 4: explicit trap
    (if (i32.eq (local.get $mode) (i32.const 4))
      (then (unreachable)))
    ;; 5: claims a 1 MB output
    (if (i32.eq (local.get $mode) (i32.const 5))
      (then (return (call $pack (i32.const 0) (i32.const 1000000)))))
    ;; 6: output pointer past the end of memory
    (if (i32.eq (local.get $mode) (i32.const 6))
      (then (return (call $pack (i32.const 65000) (i32.const 1000)))))
    ;; 7: logs "hello" once per input byte
    (if (i32.eq (local.get $mode) (i32.const 7))
      (then
        (loop $again
          (call $log (i32.const 0) (i32.const 5))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (local.get $len))))
        (return (call $pack (i32.const 0) (i32.const 0)))))
    ;; 8: random draws, little-endian, at offset 16: two for moment 0, then one for moment 1
    (if (i32.eq (local.get $mode) (i32.const 8))
      (then
        (i64.store (i32.const 16) (call $random (i32.const 0)))
        (i64.store (i32.const 24) (call $random (i32.const 0)))
        (i64.store (i32.const 32) (call $random (i32.const 1)))
        (return (call $pack (i32.const 16) (i32.const 24)))))
    ;; 9: log with a pointer outside memory
    (if (i32.eq (local.get $mode) (i32.const 9))
      (then (call $log (i32.const -16) (i32.const 64))))
    (call $pack (local.get $ptr) (local.get $len)))
  (func (export "manifest") (result i64) (call $pack (i32.const 0) (i32.const 5)))
)
"#;

    const ECHO_INPUT: &[u8] = &[0, 1, 2, 3, 42, 255];

    fn host() -> PluginHost {
        PluginHost::new(&Limits::default()).expect("engine builds")
    }

    fn wasm(text: &str) -> Vec<u8> {
        wat::parse_str(text).expect("fixture is valid WAT")
    }

    fn moody(host: &PluginHost) -> Plugin {
        host.compile("moody", &wasm(MOODY), Limits::default()).expect("moody compiles")
    }

    /// The same plugin still serves a well-behaved call after a hostile one.
    fn assert_still_serves(plugin: &Plugin) {
        let out = plugin.call(ECHO_INPUT, &[1]).expect("echo after a failure");
        assert_eq!(out.output, ECHO_INPUT);
    }

    #[test]
    fn echo_returns_its_input_and_reports_deterministic_fuel() {
        let host = host();
        let plugin = moody(&host);
        let first = plugin.call(ECHO_INPUT, &[7]).expect("echo succeeds");
        assert_eq!(first.output, ECHO_INPUT);
        assert!(first.fuel_used > 0);
        assert!(first.fuel_used < Limits::default().fuel);
        assert!(first.logs.is_empty());
        let second = plugin.call(ECHO_INPUT, &[7]).expect("echo succeeds again");
        assert_eq!(first, second);
    }

    #[test]
    fn empty_input_gives_empty_output() {
        let host = host();
        let out = moody(&host).call(&[], &[0]).expect("empty call succeeds");
        assert!(out.output.is_empty());
    }

    #[test]
    fn random_streams_are_per_moment_and_pure_functions_of_their_seeds() {
        let host = host();
        let plugin = moody(&host);
        let draw = |seeds: &[u64]| plugin.call(&[8], seeds).expect("random call").output;
        let a = draw(&[42, 43]);
        assert_eq!(a.len(), 24);
        assert_eq!(a, draw(&[42, 43]));
        assert_ne!(a, draw(&[44, 43]));
        let word = |i: usize| u64::from_le_bytes(a[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let mut zero = Stream::new(42);
        assert_eq!(word(0), zero.next_u64());
        assert_eq!(word(1), zero.next_u64());
        assert_eq!(word(2), Stream::new(43).next_u64(), "moment 1 draws from its own stream");
        let err = plugin.call(&[8], &[42]).expect_err("moment 1 does not exist").failure;
        assert!(matches!(&err, PluginFailure::Trap { message } if message.contains("random(1)")), "{err:?}");
    }

    #[test]
    fn manifest_returns_the_bytes_it_points_at() {
        let host = host();
        assert_eq!(moody(&host).manifest().expect("manifest").output, b"hello");
    }

    #[test]
    fn log_is_captured() {
        let host = host();
        let out = moody(&host).call(&[7, 0], &[0]).expect("log call");
        assert_eq!(out.logs, "hellohello");
        assert!(!out.logs_truncated);
    }

    #[test]
    fn log_is_truncated_at_the_limit() {
        let host = host();
        let plugin = moody(&host);
        let mut input = vec![0u8; 300];
        input[0] = 7;
        let out = plugin.call(&input, &[0]).expect("log call");
        assert_eq!(out.logs.len(), Limits::default().log_bytes);
        assert!(out.logs.starts_with("hellohello"));
        assert!(out.logs_truncated);
    }

    #[test]
    fn log_with_a_wild_pointer_fails_the_call() {
        let host = host();
        let plugin = moody(&host);
        let err = plugin.call(&[9], &[0]).expect_err("wild log pointer").failure;
        assert!(matches!(&err, PluginFailure::Trap { message } if message.contains("plaudit.log")), "{err:?}");
        assert_still_serves(&plugin);
    }

    #[test]
    fn infinite_loop_runs_out_of_fuel() {
        let host = host();
        let plugin = moody(&host);
        let err = plugin.call(&[1], &[0]).expect_err("loop is stopped").failure;
        assert_eq!(err, PluginFailure::OutOfFuel { limit: 11_000_000 });
        assert_still_serves(&plugin);
    }

    #[test]
    fn memory_bomb_hits_the_memory_limit() {
        let host = host();
        let plugin = moody(&host);
        let err = plugin.call(&[2], &[0]).expect_err("bomb is stopped").failure;
        assert_eq!(err, PluginFailure::MemoryLimit { limit: 10 << 20 });
        assert_still_serves(&plugin);
    }

    #[test]
    fn initial_memory_over_the_limit_fails_at_instantiation() {
        let host = host();
        // 200 pages = 12.5 MiB, over the 10 MiB default.
        let big = MOODY.replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 200)");
        let plugin = host.compile("big", &wasm(&big), Limits::default()).expect("compiles; the limit applies per call");
        let err = plugin.call(ECHO_INPUT, &[0]).expect_err("instantiation refused").failure;
        assert_eq!(err, PluginFailure::MemoryLimit { limit: 10 << 20 });
    }

    #[test]
    fn deep_recursion_overflows_the_stack() {
        let host = host();
        let plugin = moody(&host);
        let err = plugin.call(&[3], &[0]).expect_err("recursion is stopped").failure;
        assert_eq!(err, PluginFailure::StackOverflow { limit: 512 << 10 });
        assert_still_serves(&plugin);
    }

    #[test]
    fn unreachable_is_reported_as_a_trap() {
        let host = host();
        let plugin = moody(&host);
        let err = plugin.call(&[4], &[0]).expect_err("trap").failure;
        assert!(matches!(&err, PluginFailure::Trap { message } if message.contains("unreachable")), "{err:?}");
        assert_still_serves(&plugin);
    }

    #[test]
    fn huge_output_is_refused() {
        let host = host();
        let plugin = moody(&host);
        let err = plugin.call(&[5], &[0]).expect_err("output too large").failure;
        assert_eq!(err, PluginFailure::OutputTooLarge { len: 1_000_000, limit: 20 << 10 });
        assert_still_serves(&plugin);
    }

    #[test]
    fn output_outside_memory_is_bad_output() {
        let host = host();
        let plugin = moody(&host);
        let err = plugin.call(&[6], &[0]).expect_err("bad pointer").failure;
        assert!(matches!(err, PluginFailure::BadOutput { .. }), "{err:?}");
        assert_still_serves(&plugin);
    }

    #[test]
    fn input_over_the_limit_is_refused_before_running() {
        let host = host();
        let plugin = moody(&host);
        let input = vec![0u8; (128 << 10) + 1];
        let err = plugin.call(&input, &[0]).expect_err("input too large").failure;
        assert_eq!(err, PluginFailure::InputTooLarge { len: (128 << 10) + 1, limit: 128 << 10 });
    }

    #[test]
    fn alloc_returning_a_wild_pointer_is_bad_output() {
        let host = host();
        let wild = MOODY.replace("(local.get $p))", "(drop (local.get $p)) (i32.const -8))");
        let plugin = host.compile("wild", &wasm(&wild), Limits::default()).expect("compiles");
        let err = plugin.call(ECHO_INPUT, &[0]).expect_err("wild alloc").failure;
        assert!(matches!(err, PluginFailure::BadOutput { .. }), "{err:?}");
    }

    #[test]
    fn unknown_import_is_refused_at_compile() {
        let host = host();
        let text = r#"(module
            (import "env" "clock" (func (result i64)))
            (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) (i32.const 0))
            (func (export "score") (param i32 i32) (result i64) (i64.const 0)))"#;
        let err = host.compile("clock", &wasm(text), Limits::default()).expect_err("unknown import");
        assert_eq!(err, PluginError::UnknownImport { module: "env".into(), name: "clock".into() });
    }

    #[test]
    fn host_import_with_the_wrong_type_is_refused_at_compile() {
        let host = host();
        let text = r#"(module
            (import "plaudit" "random" (func (result i32)))
            (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) (i32.const 0))
            (func (export "score") (param i32 i32) (result i64) (i64.const 0)))"#;
        let err = host.compile("typo", &wasm(text), Limits::default()).expect_err("wrong import type");
        assert_eq!(err, PluginError::UnknownImport { module: "plaudit".into(), name: "random".into() });
    }

    #[test]
    fn malformed_bytes_are_invalid() {
        let host = host();
        let err = host.compile("junk", b"\0asm\x01\0\0\0garbage", Limits::default()).expect_err("malformed");
        assert!(matches!(err, PluginError::Invalid { .. }), "{err:?}");
        let err = host.compile("text", b"(module)", Limits::default()).expect_err("text is not accepted");
        assert!(matches!(err, PluginError::Invalid { .. }), "{err:?}");
    }

    #[test]
    fn a_precompiled_module_is_compiled_once_and_an_oversized_one_not_at_all() {
        let host = host();
        let cached = || host.compiled.lock().map(|c| c.len()).unwrap_or_default();
        let bytes = wasm(MOODY);
        let small = Limits { module_bytes: bytes.len() - 1, ..Limits::default() };
        let err = host.precompile(&bytes, &small).expect_err("over the module limit");
        assert!(matches!(err, PluginError::ModuleTooLarge { .. }), "{err:?}");
        assert_eq!(cached(), 0);
        host.precompile(&bytes, &Limits::default()).expect("moody compiles");
        assert_eq!(cached(), 1);
        let plugin = moody(&host);
        assert_eq!(cached(), 1, "the install took the module from the cache");
        assert_still_serves(&plugin);
    }

    #[test]
    fn missing_export_is_refused_at_compile() {
        let host = host();
        let text = r#"(module
            (memory (export "memory") 1)
            (func (export "score") (param i32 i32) (result i64) (i64.const 0)))"#;
        let err = host.compile("no-alloc", &wasm(text), Limits::default()).expect_err("missing alloc");
        assert_eq!(err, PluginError::MissingExport { name: "alloc".into(), expected: "func (i32) -> i32" });
    }

    #[test]
    fn export_with_the_wrong_type_is_refused_at_compile() {
        let host = host();
        let text = r#"(module
            (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) (i32.const 0))
            (func (export "score") (param i32 i32) (result i32) (i32.const 0)))"#;
        let err = host.compile("i32-score", &wasm(text), Limits::default()).expect_err("wrong score type");
        assert!(matches!(&err, PluginError::MissingExport { name, .. } if name == "score"), "{err:?}");
    }

    #[test]
    fn module_over_the_size_limit_is_refused() {
        let host = host();
        let bytes = wasm(MOODY);
        let limits = Limits { module_bytes: bytes.len() - 1, ..Limits::default() };
        let err = host.compile("big", &bytes, limits).expect_err("over the size limit");
        assert_eq!(err, PluginError::ModuleTooLarge { len: bytes.len(), limit: bytes.len() - 1 });
    }

    #[test]
    fn unlimited_fuel_loop_is_stopped_by_the_wall_clock_backstop() {
        let host = host();
        let limits = Limits { fuel: 1 << 62, wall_clock: Duration::from_millis(20), ..Limits::default() };
        let plugin = host.compile("spinner", &wasm(MOODY), limits).expect("compiles");
        let err = plugin.call(&[1], &[0]).expect_err("loop is stopped").failure;
        assert_eq!(err, PluginFailure::Timeout);
        assert_still_serves(&plugin);
    }

    #[test]
    fn host_and_plugins_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PluginHost>();
        assert_send_sync::<Plugin>();
    }

    #[test]
    fn limits_default_to_the_design_values() {
        let l = Limits::default();
        assert_eq!(l.fuel, 11_000_000);
        assert_eq!(l.memory_bytes, 10 * 1024 * 1024);
        assert_eq!(l.module_bytes, 256 * 1024);
        assert_eq!(l.input_bytes, 128 * 1024);
        assert_eq!(l.output_bytes, 20 * 1024);
        assert_eq!(l.log_bytes, 1024);
        assert_eq!(l.max_stack_bytes, 512 * 1024);
    }
}
