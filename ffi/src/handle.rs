//! Handle guards: which pointers handed to C are live lessor objects.
//!
//! A C caller may pass back a pointer that was freed (double free, use after
//! free) or that never came from lessor. Looking inside such a pointer — say, for
//! a magic number — would itself read freed memory. So lessor never dereferences
//! a handle before it has checked the handle's *address* against a registry of
//! the objects it handed out (a [`Registry`]: a mutex around a set of addresses),
//! and a handle that is not registered gets `LESSOR_INVALID_HANDLE` (or the
//! function's documented NULL/-1/no-op) without being touched.
//!
//! * **Engines** are never reused. A `lessor_engine` is a small slot that lives
//!   for the rest of the process (a few dozen bytes per `lessor_engine_open`);
//!   `lessor_engine_free` releases everything the engine owns and marks the slot
//!   freed, under a write lock that waits for the calls in flight (each holds the
//!   read lock). Since a slot's address is never given to another object, a
//!   freed engine is always recognised, even after any number of later opens.
//! * **Credentials, errors and strings** are freed for real (they are made by the
//!   thousand), and their addresses are removed from their registry. A stale
//!   pointer is refused as long as the allocator has not given the same address
//!   to a new object of the same kind; after that, lessor cannot tell it apart
//!   from the new object (but still never touches freed memory).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The addresses of live objects of one kind.
#[derive(Debug)]
pub(crate) struct Registry {
    live: Mutex<BTreeSet<usize>>,
}

impl Registry {
    pub(crate) const fn new() -> Registry {
        Registry { live: Mutex::new(BTreeSet::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<usize>> {
        // Nothing panics while holding the lock; and a set of addresses stays
        // consistent even if something did.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `ptr` as live and returns it.
    pub(crate) fn insert<T>(&self, ptr: *mut T) -> *mut T {
        self.lock().insert(ptr as usize);
        ptr
    }

    /// Forgets `ptr`; returns whether it was live. The caller frees the object
    /// only when this returns true, so of two racing frees exactly one frees it.
    pub(crate) fn remove<T>(&self, ptr: *const T) -> bool {
        !ptr.is_null() && self.lock().remove(&(ptr as usize))
    }

    /// Runs `f` if `ptr` is live, holding the registry's lock so that the object
    /// cannot be freed (through [`Registry::remove`]) while `f` reads it.
    pub(crate) fn with_live<T, R>(&self, ptr: *const T, f: impl FnOnce() -> R) -> Option<R> {
        if ptr.is_null() {
            return None;
        }
        let live = self.lock();
        live.contains(&(ptr as usize)).then(f)
    }

    /// Whether `ptr` is live (for objects that are never freed: engine slots).
    pub(crate) fn contains<T>(&self, ptr: *const T) -> bool {
        !ptr.is_null() && self.lock().contains(&(ptr as usize))
    }
}

/// Every `lessor_engine` slot ever handed out (slots are never freed).
pub(crate) static ENGINES: Registry = Registry::new();
/// Live `lessor_credential`s.
pub(crate) static CREDENTIALS: Registry = Registry::new();
/// Live `lessor_error`s.
pub(crate) static ERRORS: Registry = Registry::new();
/// Live strings returned to C (root tokens, response JSON).
pub(crate) static STRINGS: Registry = Registry::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_once() {
        let registry = Registry::new();
        let ptr = Box::into_raw(Box::new(7u32));
        assert!(!registry.contains(ptr));
        assert_eq!(registry.insert(ptr), ptr);
        assert_eq!(registry.with_live(ptr, || 1), Some(1));
        assert!(registry.remove(ptr));
        assert!(!registry.remove(ptr), "a second remove reports the object gone");
        assert_eq!(registry.with_live(ptr, || 1), None);
        assert!(!registry.remove(std::ptr::null::<u32>()));
        // SAFETY: `ptr` came from Box::into_raw above and was not freed.
        drop(unsafe { Box::from_raw(ptr) });
    }
}
