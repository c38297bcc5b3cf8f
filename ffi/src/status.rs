//! The status code every fallible lessor function returns.

/// Result of a lessor call.
///
/// Every fallible function returns one of these. The numbers are part of the ABI:
/// they are explicit, stable across releases, and never reused for another meaning
/// once published; new codes may be added, so a C `switch` over this type needs a
/// `default:` branch. `LESSOR_OK` is 0, so `if (status != LESSOR_OK)` tests for failure.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum lessor_status {
    /// The call succeeded.
    LESSOR_OK = 0,
    /// An argument was invalid: a string that is not UTF-8, malformed JSON, an
    /// unknown option, a malformed name or path, an out-of-range value.
    LESSOR_INVALID_ARGUMENT = 1,
    /// The token or policy in use does not allow the operation.
    LESSOR_PERMISSION_DENIED = 2,
    /// The named mount, role, connection, lease or token does not exist.
    LESSOR_NOT_FOUND = 3,
    /// The target database refused or failed the operation.
    LESSOR_DATABASE = 4,
    /// An I/O error on the engine's own files (the log, snapshots, the lock file).
    LESSOR_IO = 5,
    /// The log or a snapshot failed verification: bad checksum, broken hash
    /// chain, or a record that does not decode.
    LESSOR_CORRUPT = 6,
    /// The resource is in use: another process holds the data directory, or an
    /// operation on the same lease is already in progress.
    LESSOR_BUSY = 7,
    /// A pointer argument that must not be NULL was NULL. The error message names it.
    LESSOR_NULL_PARAMETER = 8,
    /// A handle argument is not a live lessor object: a `lessor_engine` already
    /// freed by `lessor_engine_free` (or being freed), or a pointer that no lessor
    /// function returned as a handle of that type. The call did nothing. The
    /// error message names the argument. See "Handles" at the top of lessor.h for
    /// what lessor can and cannot detect.
    LESSOR_INVALID_HANDLE = 9,
    /// `lessor_init` on a data directory that already holds a log: open it with
    /// `lessor_engine_open` instead, or choose an empty directory. Nothing was
    /// changed.
    LESSOR_ALREADY_INITIALIZED = 10,
    /// A bug: Rust code panicked inside the call. The panic was caught at the
    /// boundary, so the process is intact, but any lessor object passed to that
    /// call should be treated as unusable and freed.
    LESSOR_PANIC = 100,
}

impl lessor_status {
    /// Every status, in numeric order.
    pub fn all() -> [lessor_status; 12] {
        [
            lessor_status::LESSOR_OK,
            lessor_status::LESSOR_INVALID_ARGUMENT,
            lessor_status::LESSOR_PERMISSION_DENIED,
            lessor_status::LESSOR_NOT_FOUND,
            lessor_status::LESSOR_DATABASE,
            lessor_status::LESSOR_IO,
            lessor_status::LESSOR_CORRUPT,
            lessor_status::LESSOR_BUSY,
            lessor_status::LESSOR_NULL_PARAMETER,
            lessor_status::LESSOR_INVALID_HANDLE,
            lessor_status::LESSOR_ALREADY_INITIALIZED,
            lessor_status::LESSOR_PANIC,
        ]
    }

    /// The C name of the status, NUL-terminated.
    pub fn name(self) -> &'static std::ffi::CStr {
        match self {
            lessor_status::LESSOR_OK => c"LESSOR_OK",
            lessor_status::LESSOR_INVALID_ARGUMENT => c"LESSOR_INVALID_ARGUMENT",
            lessor_status::LESSOR_PERMISSION_DENIED => c"LESSOR_PERMISSION_DENIED",
            lessor_status::LESSOR_NOT_FOUND => c"LESSOR_NOT_FOUND",
            lessor_status::LESSOR_DATABASE => c"LESSOR_DATABASE",
            lessor_status::LESSOR_IO => c"LESSOR_IO",
            lessor_status::LESSOR_CORRUPT => c"LESSOR_CORRUPT",
            lessor_status::LESSOR_BUSY => c"LESSOR_BUSY",
            lessor_status::LESSOR_NULL_PARAMETER => c"LESSOR_NULL_PARAMETER",
            lessor_status::LESSOR_INVALID_HANDLE => c"LESSOR_INVALID_HANDLE",
            lessor_status::LESSOR_ALREADY_INITIALIZED => c"LESSOR_ALREADY_INITIALIZED",
            lessor_status::LESSOR_PANIC => c"LESSOR_PANIC",
        }
    }

    /// The status with number `code`, if there is one.
    pub fn from_code(code: u32) -> Option<lessor_status> {
        lessor_status::all().into_iter().find(|s| *s as u32 == code)
    }
}

#[cfg(test)]
mod tests {
    use super::lessor_status::*;

    #[test]
    fn codes_are_the_published_numbers() {
        let codes = [
            (LESSOR_OK, 0),
            (LESSOR_INVALID_ARGUMENT, 1),
            (LESSOR_PERMISSION_DENIED, 2),
            (LESSOR_NOT_FOUND, 3),
            (LESSOR_DATABASE, 4),
            (LESSOR_IO, 5),
            (LESSOR_CORRUPT, 6),
            (LESSOR_BUSY, 7),
            (LESSOR_NULL_PARAMETER, 8),
            (LESSOR_INVALID_HANDLE, 9),
            (LESSOR_ALREADY_INITIALIZED, 10),
            (LESSOR_PANIC, 100),
        ];
        for (status, code) in codes {
            assert_eq!(status as u32, code, "{status:?}");
        }
    }
}
