//! Random characters from a caller-supplied byte source, every choice unbiased.
//!
//! The caller passes the random bytes (`fill`): the operating system's CSPRNG in
//! the engine, a deterministic source in tests. A byte is used only when it falls
//! below the largest multiple of the alphabet's size that fits in a byte,
//! otherwise another is drawn. Passwords ([`super::password`]) and `{{random N}}`
//! in username templates draw through here.

use zeroize::Zeroize;

/// The most characters [`random_alnum`] (`{{random N}}`) produces.
pub const RANDOM_CHARS_MAX: usize = 64;
/// Drawing this many unusable bytes in a row means the byte source is broken.
const REJECTED_BYTES_MAX: usize = 1024;

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random characters from `[A-Za-z0-9]`, for `{{random N}}`.
///
/// # Panics
/// If `n` is over [`RANDOM_CHARS_MAX`] (templates are checked for that when
/// parsed), or as [`generate_password`](super::password::generate_password) on a
/// broken source.
pub fn random_alnum(n: usize, fill: &mut dyn FnMut(&mut [u8])) -> String {
    assert!(n <= RANDOM_CHARS_MAX, "random_alnum({n}): at most {RANDOM_CHARS_MAX} characters");
    let mut picker = Picker::new(fill);
    (0..n).map(|_| char::from(ALNUM[picker.below(ALNUM.len())])).collect()
}

/// Unbiased indexes from a byte source, drawn in blocks; the block is wiped after.
pub(crate) struct Picker<'f> {
    fill: &'f mut dyn FnMut(&mut [u8]),
    block: [u8; 64],
    used: usize,
}

impl<'f> Picker<'f> {
    pub(crate) fn new(fill: &'f mut dyn FnMut(&mut [u8])) -> Self {
        Picker { fill, block: [0; 64], used: 64 }
    }

    /// A uniform index in `0..n`, `1 <= n <= 256`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!((1..=256).contains(&n));
        let zone = 256 - 256 % n;
        for _ in 0..REJECTED_BYTES_MAX {
            if self.used == self.block.len() {
                (self.fill)(&mut self.block);
                self.used = 0;
            }
            let b = usize::from(self.block[self.used]);
            self.used += 1;
            if b < zone {
                return b % n;
            }
        }
        panic!("the random source returned {REJECTED_BYTES_MAX} unusable bytes in a row; it is broken");
    }
}

impl Drop for Picker<'_> {
    fn drop(&mut self) {
        self.block.zeroize();
    }
}

impl std::fmt::Debug for Picker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Picker")
    }
}
/// A deterministic byte source for unit tests: a simple xorshift, good enough to
/// spread values.
#[cfg(test)]
pub(crate) fn seeded(mut state: u64) -> impl FnMut(&mut [u8]) {
    move |buf: &mut [u8]| {
        for b in buf {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = (state >> 32) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_unbiased() {
        // Bytes 0..=255 once each: with 62 symbols, 256 % 62 = 8 bytes are rejected,
        // and each symbol is chosen exactly 4 times from the other 248.
        let mut counter = 0u8;
        let mut counting = |buf: &mut [u8]| {
            for b in buf {
                *b = counter;
                counter = counter.wrapping_add(1);
            }
        };
        let mut picker = Picker::new(&mut counting);
        let mut counts = [0usize; 62];
        for _ in 0..248 {
            counts[picker.below(62)] += 1;
        }
        assert!(counts.iter().all(|&c| c == 4), "{counts:?}");
    }

    #[test]
    #[should_panic(expected = "unusable bytes")]
    fn a_broken_source_panics() {
        random_alnum(10, &mut |buf: &mut [u8]| buf.fill(0xff));
    }

    #[test]
    fn random_alnum_is_alphanumeric() {
        let s = random_alnum(RANDOM_CHARS_MAX, &mut seeded(3));
        assert_eq!(s.len(), RANDOM_CHARS_MAX);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(random_alnum(0, &mut seeded(3)), "");
    }
}
