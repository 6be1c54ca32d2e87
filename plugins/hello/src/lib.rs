//! Placeholder plugin: just enough to prove the wasm32 toolchain end to end. It is not the
//! plugin ABI (that comes with the SDK); it only decodes moments and answers how many it saw.
//!
//! Exports:
//! - `alloc(len) -> ptr`: a buffer of `len` bytes the host writes input into.
//! - `dealloc(ptr, len)`: frees a buffer from `alloc` or one returned by `score`.
//! - `score(ptr, len) -> u64`: reads a MessagePack `Vec<Moment>` from `ptr..ptr+len` (and frees
//!   it), returns `(out_ptr << 32) | out_len` of a MessagePack-encoded `u64` count, or 0 if the
//!   input does not decode.

use plaudit_sdk::Moment;

#[no_mangle]
pub extern "C" fn alloc(len: u32) -> u32 {
    let mut buf = Vec::<u8>::with_capacity(len as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as u32
}

/// # Safety
/// `ptr` and `len` must come from `alloc`, or from a result of `score`, and not be freed twice.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: u32, len: u32) {
    drop(Vec::from_raw_parts(ptr as *mut u8, 0, len as usize));
}

/// # Safety
/// `ptr..ptr+len` must be a buffer from `alloc(len)`, filled by the host; it is freed here.
#[no_mangle]
pub unsafe extern "C" fn score(ptr: u32, len: u32) -> u64 {
    let input = Vec::from_raw_parts(ptr as *mut u8, len as usize, len as usize);
    let moments: Vec<Moment> = match rmp_serde::from_slice(&input) {
        Ok(m) => m,
        Err(_) => return 0,
    };
    let out = match rmp_serde::to_vec(&(moments.len() as u64)) {
        Ok(out) => out.into_boxed_slice(),
        Err(_) => return 0,
    };
    let out_len = out.len() as u64;
    let out_ptr = Box::into_raw(out) as *mut u8 as u32 as u64;
    (out_ptr << 32) | out_len
}
