//! Expiry: when leases fall due. The timing wheel (`wheel.rs`) holds one entry
//! per armed lease and is driven by the caller's `now`; it never reads a clock, so a
//! manual clock runs a year of expiries in milliseconds and replay stays deterministic.
//!
//! Public here: how expiry is paced ([`ExpiryOptions`]) and what one pass did
//! ([`ExpiryReport`]); the wheel is the engine's (public to test code with
//! feature `testing`). An embedder runs expiry with [`crate::Host`] or
//! [`crate::Expirer`].

mod armed;
pub(crate) mod expirer;
internal! {
    mod wheel;
}

pub use expirer::{ExpiryOptions, ExpiryReport};
internal! {
    use wheel::{Expired, Key, Wheel};
}
