//! C ABI for lessor.
