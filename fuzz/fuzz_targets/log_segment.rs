//! Recovery over arbitrary segment bytes: must return (Ok or Err), never panic,
//! loop, or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lessor_engine::log::fuzz_recover(data);
});
