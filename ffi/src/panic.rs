//! The panic boundary every exported function runs its body in.
//!
//! Unwinding out of an `extern "C"` function aborts the process, and a C caller
//! cannot handle a Rust panic anyway. So each exported function wraps its body:
//!
//! ```
//! # use lessor::{lessor_status, panic::ffi_panic_boundary};
//! #[unsafe(no_mangle)]
//! pub extern "C" fn lessor_example() -> lessor_status {
//!     ffi_panic_boundary(|| lessor_status::LESSOR_OK)
//! }
//! # assert_eq!(lessor_example(), lessor_status::LESSOR_OK);
//! ```
//!
//! and a panic inside becomes the return type's [`PanicDefault::panic_default`]
//! value. The release profile keeps `panic = "unwind"` for this to work.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::lessor_status;

/// The value an exported function returns when its body panicked.
pub trait PanicDefault {
    fn panic_default() -> Self;
}

impl PanicDefault for lessor_status {
    fn panic_default() -> Self {
        lessor_status::LESSOR_PANIC
    }
}

impl<T> PanicDefault for *const T {
    fn panic_default() -> Self {
        std::ptr::null()
    }
}

impl<T> PanicDefault for *mut T {
    fn panic_default() -> Self {
        std::ptr::null_mut()
    }
}

impl PanicDefault for () {
    fn panic_default() -> Self {}
}

impl PanicDefault for bool {
    fn panic_default() -> Self {
        false
    }
}

/// -1: no count, size or duration is negative.
impl PanicDefault for i64 {
    fn panic_default() -> Self {
        -1
    }
}

impl PanicDefault for usize {
    fn panic_default() -> Self {
        0
    }
}

/// Runs `body`, turning a panic into `R::panic_default()`.
///
/// The closure is treated as unwind-safe: after a panic, the contract of
/// [`lessor_status::LESSOR_PANIC`] tells the C caller not to reuse the objects it
/// passed in, so no broken invariant is observed afterwards. The panic message is
/// still printed by the panic hook (to stderr by default).
#[inline]
pub fn ffi_panic_boundary<R: PanicDefault>(body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| R::panic_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_default_value() {
        let status: lessor_status = ffi_panic_boundary(|| panic!("boom"));
        assert_eq!(status, lessor_status::LESSOR_PANIC);
        let ptr: *const u8 = ffi_panic_boundary(|| panic!("boom"));
        assert!(ptr.is_null());
    }

    #[test]
    fn a_normal_return_passes_through() {
        assert_eq!(ffi_panic_boundary(|| lessor_status::LESSOR_BUSY), lessor_status::LESSOR_BUSY);
    }
}
