//! C ABI for lessor: builds `liblessor.so` / `liblessor.a` and, through cbindgen,
//! the header `include/lessor.h`.
//!
//! This crate holds no logic: every decision lives in `lessor-engine`. It only
//! converts between C and Rust values, and it is the only shipped crate with
//! `unsafe` code besides the CLI's dependency `lessor-pgtemp` (libc calls for
//! `geteuid` and `statvfs`); the engine forbids it, and the bench and test
//! harnesses use it only for such calls. Rules every exported function follows:
//!
//! * its name starts with `lessor_` and it is `extern "C"` with `#[unsafe(no_mangle)]`;
//! * its body runs inside [`panic::ffi_panic_boundary`], so a Rust panic never
//!   unwinds into C: the function returns its type's [`panic::PanicDefault`] value
//!   instead (`LESSOR_PANIC` for a [`lessor_status`], `NULL` for a pointer);
//! * its `///` documentation is written for the C reader (it ends up in the header):
//!   who owns what, whether `NULL` is allowed, and what may be called from which thread;
//! * every `unsafe` block carries a `// SAFETY:` comment.

pub mod api;
pub mod error;
mod handle;
pub mod panic;
pub mod status;

use std::ffi::{CStr, c_char};

pub use api::*;
pub use error::*;
pub use status::lessor_status;

use crate::panic::ffi_panic_boundary;

/// The crate version with a trailing NUL, checked at compile time.
const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(version) => version,
    Err(_) => panic!("CARGO_PKG_VERSION contains a NUL byte"),
};

/// Returns the version of liblessor as a NUL-terminated string, e.g. "0.1.0".
///
/// The string is static: it stays valid for the life of the process, and the
/// caller must neither free nor modify it. The function takes no lock and may be
/// called from any thread, at any time, even before any other lessor function.
/// It never returns NULL.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_version() -> *const c_char {
    ffi_panic_boundary(|| VERSION.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_crate_version() {
        let ptr = lessor_version();
        assert!(!ptr.is_null());
        // SAFETY: `lessor_version` returns a pointer to a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(ptr) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
