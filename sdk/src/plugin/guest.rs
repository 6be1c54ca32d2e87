//! The guest side of the ABI: decode the input, run the handler over every moment with the
//! actor's state, encode the output. [`process`] is the whole of it and is shared by the wasm
//! exports and the native [`super::testing::Harness`], so tests exercise the real path.
//!
//! Off wasm32, the host imports (`random`, `log`) are emulated per thread for the harness.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{self, Bytes, Output};
use super::{Definition, Effects, Moment, Need};

/// Runs `definition` over an encoded [`wire::Input`]. Never panics on bad input: a failure is
/// reported in [`Output::error`].
pub fn process<S: Serialize + DeserializeOwned + Default>(definition: &Definition<S>, input: &[u8]) -> Output {
    run(definition, input).unwrap_or_else(|error| Output { error: Some(error), ..Output::default() })
}

struct Slot<S> {
    who: u32,
    state: S,
    saved: Option<Vec<u8>>,
}

fn run<S: Serialize + DeserializeOwned + Default>(definition: &Definition<S>, input: &[u8]) -> Result<Output, String> {
    let mut input = wire::Input::from_msgpack(input).map_err(|e| format!("the input does not decode: {}", e))?;
    let keep_state = definition.needs(Need::State);
    let mut index: HashMap<u32, usize> = HashMap::new();
    let mut slots: Vec<Slot<S>> = Vec::new();
    if keep_state {
        for (who, bytes) in std::mem::take(&mut input.states) {
            let state = wire::decode(&bytes.0)
                .map_err(|e| format!("the saved state of stakeholder {} does not decode: {}", who, e))?;
            index.insert(who, slots.len());
            slots.push(Slot { who, state, saved: Some(bytes.0) });
        }
    }
    let mut effects = Effects::default();
    for (i, m) in input.moments.iter().enumerate() {
        set_moment(i as u32);
        effects.moment = i as u32;
        let view = Moment::new(m, &input);
        if keep_state {
            let slot = *index.entry(m.actor).or_insert_with(|| {
                slots.push(Slot { who: m.actor, state: S::default(), saved: None });
                slots.len() - 1
            });
            (definition.handler)(&view, &mut slots[slot].state, &mut effects);
        } else {
            let mut state = S::default();
            (definition.handler)(&view, &mut state, &mut effects);
        }
    }
    let mut states = Vec::new();
    if keep_state {
        let empty = wire::encode(&S::default()).map_err(|e| format!("the default state does not encode: {}", e))?;
        // One scratch buffer for the comparisons; a copy only for the states that changed.
        let mut bytes = Vec::new();
        for slot in slots {
            wire::encode_into(&mut bytes, &slot.state)
                .map_err(|e| format!("the state of stakeholder {} does not encode: {}", slot.who, e))?;
            if slot.saved.as_ref() == Some(&bytes) {
                continue;
            }
            if bytes == empty {
                if slot.saved.is_some() {
                    states.push((slot.who, None));
                }
            } else {
                states.push((slot.who, Some(Bytes(bytes.clone()))));
            }
        }
    }
    Ok(Output { error: None, effects: effects.out, states })
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[link(wasm_import_module = "plaudit")]
    extern "C" {
        #[link_name = "random"]
        fn host_random(moment: i32) -> i64;
        #[link_name = "log"]
        fn host_log(ptr: i32, len: i32);
    }

    static MOMENT: AtomicU32 = AtomicU32::new(0);
    static HOOKED: AtomicBool = AtomicBool::new(false);

    pub fn set_moment(i: u32) {
        MOMENT.store(i, Ordering::Relaxed);
    }

    pub fn random() -> u64 {
        // SAFETY: a host import taking and returning plain integers.
        unsafe { host_random(MOMENT.load(Ordering::Relaxed) as i32) as u64 }
    }

    pub fn log(text: &str) {
        // SAFETY: the host reads `len` bytes at `ptr`, which stay valid for the call.
        unsafe { host_log(text.as_ptr() as usize as i32, text.len() as i32) }
    }

    /// Sends panic messages to the host log, so a failed call says why.
    pub fn hook_panics() {
        if !HOOKED.swap(true, Ordering::Relaxed) {
            std::panic::set_hook(Box::new(|info| log(&format!("panic: {}", info))));
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;

    use super::super::wire::Stream;

    #[derive(Default)]
    pub struct Emulated {
        pub seeds: Vec<u64>,
        pub moment: u32,
        pub stream: Option<(u32, Stream)>,
        pub logs: String,
    }

    thread_local! {
        pub static HOST: RefCell<Emulated> = RefCell::new(Emulated::default());
    }

    pub fn set_moment(i: u32) {
        HOST.with(|h| h.borrow_mut().moment = i);
    }

    pub fn random() -> u64 {
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            let moment = h.moment;
            let seed = h.seeds.get(moment as usize).copied().unwrap_or(0);
            match &mut h.stream {
                Some((m, stream)) if *m == moment => stream.next_u64(),
                other => {
                    let mut stream = Stream::new(seed);
                    let n = stream.next_u64();
                    *other = Some((moment, stream));
                    n
                }
            }
        })
    }

    pub fn log(text: &str) {
        HOST.with(|h| h.borrow_mut().logs.push_str(text));
    }
}

use imp::set_moment;
pub(crate) use imp::{log, random};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use imp::HOST;

/// Packs a buffer the host will read as `(ptr << 32) | len`; the fresh sandbox of the call
/// owns it, so it is never freed.
#[cfg(target_arch = "wasm32")]
fn leak(bytes: Vec<u8>) -> i64 {
    let bytes = bytes.into_boxed_slice();
    let len = bytes.len() as u64;
    let ptr = Box::into_raw(bytes) as *mut u8 as usize as u64;
    ((ptr << 32) | len) as i64
}

/// The `alloc` export: room for `len` input bytes.
#[cfg(target_arch = "wasm32")]
pub fn alloc(len: i32) -> i32 {
    let mut buffer = Vec::<u8>::with_capacity(len.max(0) as usize);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr as usize as i32
}

/// The `score` export.
#[cfg(target_arch = "wasm32")]
pub fn score<S: Serialize + DeserializeOwned + Default>(definition: &Definition<S>, ptr: i32, len: i32) -> i64 {
    imp::hook_panics();
    // SAFETY: the host wrote `len` bytes at `ptr`, a buffer it got from `alloc(len)`.
    let input = unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len.max(0) as usize) };
    let output = process(definition, input);
    let bytes = wire::encode(&output).unwrap_or_else(|e| {
        let failed = Output { error: Some(format!("the output does not encode: {}", e)), ..Output::default() };
        wire::encode(&failed).unwrap_or_default()
    });
    leak(bytes)
}

/// The `manifest` export.
#[cfg(target_arch = "wasm32")]
pub fn manifest<S>(definition: &Definition<S>) -> i64 {
    leak(wire::encode(&definition.manifest()).unwrap_or_default())
}
