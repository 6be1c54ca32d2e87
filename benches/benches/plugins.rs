//! Plugins on the reference workload of docs/design.md's figures (100k stakeholders, Zipf-skewed actors, the `acme`
//! rule set, batches of 4096), with the `bridge_builder` example plugin on every moment:
//!
//! - `native_acme_100k`: the engine without plugins, as a reference in the same run;
//! - `bridge_builder_acme_100k`: the same with the plugin (its pass: encode, sandbox call,
//!   decode, check, apply, alongside the native passes);
//! - `bare_wasmtime_round_trip`: the same moments, encoded the same way (teams and the
//!   plugin's state, 512 moments a call), through a bare wasmtime instance of the same module
//!   (default config: no fuel, no epochs, one instance reused): encode, copy in, call, copy
//!   out, decode. The plugin path's cost is (1/with - 1/native) a moment; docs/design.md wants it
//!   within 2x of this one.
//! - `load/*`: compiling each example module (validate, compile, pre-link, read the manifest)
//!   in a fresh host, loading a module the host compiled before (its cache), and instantiating
//!   a sandbox (a fresh store and instance, plus the `manifest` call).
//!
//! Needs `plugins/dist/*.wasm`: run `bash scripts/build-plugins.sh` first.

use std::cell::Cell;
use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use plaudit_benches::{BATCH, STAKEHOLDERS, WARMUP_MOMENTS, acme, bench_batches, root, warm_up, workload};
use plaudit_core::calendar::parse_rfc3339;
use plaudit_core::plugins::{Limits, PluginHost};
use plaudit_core::workload::Workload;
use plaudit_sdk::plugin::wire::{self, Bytes, Input, MomentIn, Output};

/// The `plaudit` binary's allocator (`plaudit_allocator`), so that the figures are the
/// shipped binary's, and this bench's native figure the scoring bench's.
#[global_allocator]
static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;

const PER_CALL: usize = 512;

fn module(crate_name: &str) -> Vec<u8> {
    let path = root().join("plugins/dist").join(format!("{crate_name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `bash scripts/build-plugins.sh` first", path.display()))
}

/// Scores batches of fresh moments into a warmed-up acme world, with or without the plugin.
fn ingest(c: &mut Criterion, host: &PluginHost, name: &str, plugin: Option<&str>) {
    plaudit_allocator::configure();
    let workload = workload();
    let mut world = acme();
    if let Some(crate_name) = plugin {
        let loaded = plaudit_core::plugins::load(host, crate_name, &module(crate_name), Limits::default())
            .expect("the module loads");
        world.install_plugin(crate_name, Arc::new(loaded));
    }
    warm_up(&mut world, &workload);
    bench_batches(c, "plugins", name, &mut world, &workload);
    for s in world.plugins() {
        assert_eq!(s.failed_calls, 0, "{s:?}");
        eprintln!("{}: {} fuel a moment", s.name, s.fuel_used / s.moments.max(1));
    }
}

fn native(c: &mut Criterion) {
    let host = PluginHost::new(&Limits::default()).expect("sandbox");
    ingest(c, &host, "native_acme_100k", None);
}

fn with_plugin(c: &mut Criterion) {
    let host = PluginHost::new(&Limits::default()).expect("sandbox");
    ingest(c, &host, "bridge_builder_acme_100k", Some("bridge_builder"));
}

/// A moment as the engine has it when the plugins pass runs: ids numbered, strings interned
/// (into [`Encoder::words`]), the time parsed. Resolving is not part of the round trip.
struct Resolved {
    seq: u64,
    actor: u32,
    counterpart: Option<u32>,
    kind: u32,
    channel: u32,
    at: i64,
    value: Option<f64>,
    actor_team: u32,
    counterpart_team: Option<u32>,
}

/// Encodes calls the way the plugins pass does (teams and state context, a per-call dictionary
/// built with a hash map, each actor's state once), and keeps the plugin's state between calls.
struct Encoder {
    workload: Workload,
    words: Vec<String>,
    word_ids: HashMap<String, u32>,
    team_of: Vec<u32>,
    states: HashMap<u32, Vec<u8>>,
}

impl Encoder {
    fn new() -> Encoder {
        let workload = workload();
        let mut encoder = Encoder {
            workload,
            words: Vec::new(),
            word_ids: HashMap::new(),
            team_of: Vec::new(),
            states: HashMap::new(),
        };
        encoder.team_of = (0..STAKEHOLDERS)
            .map(|i| {
                let team = encoder.workload.profile(i).team.unwrap_or_default();
                encoder.word(&team)
            })
            .collect();
        encoder
    }

    fn word(&mut self, text: &str) -> u32 {
        if let Some(&w) = self.word_ids.get(text) {
            return w;
        }
        self.words.push(text.to_string());
        self.word_ids.insert(text.to_string(), self.words.len() as u32 - 1);
        self.words.len() as u32 - 1
    }

    /// Moments `from..from + BATCH`, resolved (outside the timed section).
    fn resolve(&mut self, from: usize) -> Vec<Resolved> {
        let number = |id: &str| id.trim_start_matches('s').parse::<u32>().expect("workload ids are s<number>");
        let moments: Vec<_> = self.workload.moments(from, from + BATCH).collect();
        moments
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let actor = number(&m.stakeholder);
                let counterpart = m.counterpart.as_deref().map(number);
                Resolved {
                    seq: (from + i) as u64,
                    actor,
                    counterpart,
                    kind: self.word(&m.kind),
                    channel: self.word(&m.channel),
                    at: parse_rfc3339(&m.at).expect("workload times parse"),
                    value: m.value,
                    actor_team: self.team_of[actor as usize],
                    counterpart_team: counterpart.map(|c| self.team_of[c as usize]),
                }
            })
            .collect()
    }

    /// The encoded input of each call of `moments`.
    fn calls(&self, moments: &[Resolved]) -> Vec<Vec<u8>> {
        moments
            .chunks(PER_CALL)
            .map(|chunk| {
                let mut local: FxHashMap<u32, u32> = FxHashMap::default();
                let mut dict: Vec<String> = Vec::new();
                let mut word = |w: u32| {
                    *local.entry(w).or_insert_with(|| {
                        dict.push(self.words[w as usize].clone());
                        dict.len() as u32 - 1
                    })
                };
                let mut input = Input::default();
                let mut sent = FxHashSet::default();
                for m in chunk {
                    input.moments.push(MomentIn {
                        seq: m.seq,
                        actor: m.actor,
                        counterpart: m.counterpart,
                        kind: word(m.kind),
                        channel: word(m.channel),
                        at: m.at,
                        value: m.value,
                        actor_team: Some(word(m.actor_team)),
                        counterpart_team: m.counterpart_team.map(&mut word),
                        awards: Vec::new(),
                    });
                    if let Some(s) = self.states.get(&m.actor)
                        && sent.insert(m.actor)
                    {
                        input.states.push((m.actor, Bytes(s.clone())));
                    }
                }
                input.dict = dict;
                wire::encode(&input).expect("encodes")
            })
            .collect()
    }

    fn keep(&mut self, output: Output) {
        for (who, state) in output.states {
            match state {
                Some(b) => self.states.insert(who, b.0),
                None => self.states.remove(&who),
            };
        }
    }
}

/// A bare wasmtime instance of a module: default config, reused across calls (re-made every
/// 256 calls, since the guest never frees what it returns).
struct Bare {
    engine: wasmtime::Engine,
    module: wasmtime::Module,
    linker: wasmtime::Linker<()>,
    live: Option<(wasmtime::Store<()>, wasmtime::Instance, u32)>,
}

impl Bare {
    fn new(wasm: &[u8]) -> Bare {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wasm).expect("module compiles");
        let mut linker = wasmtime::Linker::new(&engine);
        linker.func_wrap("plaudit", "log", |_: i32, _: i32| {}).expect("log links");
        linker.func_wrap("plaudit", "random", |m: i32| m as i64).expect("random links");
        Bare { engine, module, linker, live: None }
    }

    fn call(&mut self, input: &[u8]) -> Vec<u8> {
        if self.live.as_ref().is_none_or(|l| l.2 >= 256) {
            let mut store = wasmtime::Store::new(&self.engine, ());
            let instance = self.linker.instantiate(&mut store, &self.module).expect("instantiates");
            self.live = Some((store, instance, 0));
        }
        let (store, instance, calls) = self.live.as_mut().expect("live instance");
        *calls += 1;
        let memory = instance.get_memory(&mut *store, "memory").expect("memory");
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "alloc").expect("alloc");
        let score = instance.get_typed_func::<(i32, i32), i64>(&mut *store, "score").expect("score");
        let ptr = alloc.call(&mut *store, input.len() as i32).expect("alloc call");
        memory.write(&mut *store, ptr as usize, input).expect("input fits");
        let packed = score.call(&mut *store, (ptr, input.len() as i32)).expect("score call") as u64;
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed as u32) as usize);
        memory.data(&*store)[out_ptr..out_ptr + out_len].to_vec()
    }
}

fn bare(c: &mut Criterion) {
    plaudit_allocator::configure();
    let mut encoder = Encoder::new();
    let mut bare = Bare::new(&module("bridge_builder"));
    // Warm the plugin's state up like the engine's.
    for from in (0..WARMUP_MOMENTS).step_by(BATCH) {
        let moments = encoder.resolve(from);
        for input in encoder.calls(&moments) {
            let out = wire::decode(&bare.call(&input)).expect("output decodes");
            encoder.keep(out);
        }
    }
    let next = Cell::new(WARMUP_MOMENTS);
    let encoder = std::cell::RefCell::new(encoder);
    let mut group = c.benchmark_group("plugins");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("bare_wasmtime_round_trip", |b| {
        b.iter_batched(
            || {
                let start = next.get();
                next.set(start + BATCH);
                encoder.borrow_mut().resolve(start)
            },
            |moments| {
                let calls = encoder.borrow().calls(&moments);
                for input in calls {
                    let out: Output = wire::decode(&bare.call(&input)).expect("output decodes");
                    encoder.borrow_mut().keep(out);
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let host = PluginHost::new(&Limits::default()).expect("sandbox");
    let mut group = c.benchmark_group("plugins/load");
    for crate_name in ["bridge_builder", "story_echo", "burst_guard"] {
        let wasm = module(crate_name);
        // A host of its own each time: the host keeps what it compiled, and a second load of
        // the same bytes would measure that cache.
        group.bench_function(format!("compile_{crate_name}"), |b| {
            b.iter_batched(
                || PluginHost::new(&Limits::default()).expect("sandbox"),
                |fresh| plaudit_core::plugins::load(&fresh, crate_name, &wasm, Limits::default()).expect("loads"),
                BatchSize::PerIteration,
            )
        });
    }
    let wasm = module("bridge_builder");
    plaudit_core::plugins::load(&host, "bridge_builder", &wasm, Limits::default()).expect("loads");
    group.bench_function("load_compiled_bridge_builder", |b| {
        b.iter(|| plaudit_core::plugins::load(&host, "bridge_builder", &wasm, Limits::default()).expect("loads"))
    });
    let loaded = plaudit_core::plugins::load(&host, "bridge_builder", &module("bridge_builder"), Limits::default())
        .expect("loads");
    group.bench_function("instantiate_and_manifest_call", |b| b.iter(|| loaded.plugin().manifest().expect("manifest")));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = native, with_plugin, bare, load
}
criterion_main!(benches);
