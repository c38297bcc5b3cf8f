//! Expiry: when leases fall due. The timing wheel ([`wheel::Wheel`]) holds one entry
//! per armed lease and is driven by the caller's `now`; it never reads a clock, so a
//! manual clock runs a year of expiries in milliseconds and replay stays deterministic.

mod armed;
pub(crate) mod expirer;
pub mod wheel;

pub use expirer::{ExpiryOptions, ExpiryReport};
pub use wheel::{Expired, Key, Wheel};
