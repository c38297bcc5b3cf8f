//! Secrets in memory: overwritten with zeros when dropped, never printed.

use zeroize::Zeroizing;

/// A secret string — an issued database password. Its memory is overwritten
/// with zeros when it is dropped, and `Debug` prints `<redacted>`, so it cannot
/// leak through a log line, a panic message or freed memory. Read it with
/// [`Secret::expose`] where it must be handed over, and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Takes ownership of `text`; its buffer is the one zeroed on drop (build it
    /// with its final capacity, or the copies a growing `String` left behind
    /// are not).
    pub(crate) fn new(text: String) -> Secret {
        Secret(Zeroizing::new(text))
    }

    /// The secret, to hand to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret::new(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::new("hunter2-Very-Secret".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:#?}", Some(&secret)), "Some(\n    Secret(<redacted>),\n)");
        assert_eq!(secret.expose(), "hunter2-Very-Secret");
    }
}
