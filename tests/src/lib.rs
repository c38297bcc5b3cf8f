//! Support code shared by the cross-crate tests.
//!
//! * [`pg`]: a throwaway PostgreSQL server per test binary and a database per test.

pub mod lessor;
pub use lessor_pgtemp as pg;
