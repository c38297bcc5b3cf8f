//! Token secrets and accessors: generation, hashing, and the checks a token must
//! pass to be used.
//!
//! A secret is `lsr.` + 32 base62 characters (~190 bits) and is never stored: the
//! log and the state hold only its HMAC-SHA256 under the token-hash key. The
//! accessor (24 base62 characters) is public: it names the token in audit records,
//! lookups and revocations without granting anything.

use super::keys::{KeyError, Keys, random_base62};
use super::policy::{DEFAULT_POLICY, DEFAULT_POLICY_TEXT, ROOT_POLICY};
use crate::event::{EngineInitialized, Event, PolicyWritten, TokenCreated};
use crate::state::Token;

pub(crate) const TOKEN_PREFIX: &str = "lsr.";
pub(crate) const TOKEN_SECRET_CHARS: usize = 32;
pub(crate) const ACCESSOR_CHARS: usize = 24;
/// Vault's system maximum TTL, used when neither token nor mount says otherwise.
pub(crate) const TOKEN_TTL_MS_DEFAULT: u64 = 768 * 3_600_000;
/// Longest display name kept, in bytes.
pub(crate) const DISPLAY_NAME_BYTES_MAX: usize = 64;

/// A token secret in memory. `Debug` shows only its prefix, so it cannot leak
/// through a log line or a panic message.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    pub(crate) fn generate() -> Result<TokenSecret, KeyError> {
        Ok(TokenSecret(format!("{TOKEN_PREFIX}{}", random_base62(TOKEN_SECRET_CHARS)?)))
    }

    /// A root token secret chosen by the operator (`lessor server -dev
    /// -dev-root-token-id=…`, as Vault's dev mode): 1 to 128 printable ASCII
    /// characters without spaces, so it fits a header and a shell word.
    pub fn chosen(secret: &str) -> Result<TokenSecret, String> {
        if secret.is_empty() || secret.len() > 128 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a chosen token must be 1 to 128 printable ASCII characters without spaces".into());
        }
        Ok(TokenSecret(secret.to_string()))
    }

    /// The secret, to hand to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSecret({TOKEN_PREFIX}…)")
    }
}

pub(crate) fn new_accessor() -> Result<String, KeyError> {
    random_base62(ACCESSOR_CHARS)
}

/// The events that bring a new data directory to life, and the root token secret.
pub(crate) fn init_events(keys: &Keys, root: Option<TokenSecret>) -> Result<(TokenSecret, Vec<Event>), KeyError> {
    let root = match root {
        Some(root) => root,
        None => TokenSecret::generate()?,
    };
    let events = vec![
        EngineInitialized { key_check: keys.key_check(), checkpoint_public_key: keys.checkpoint_public_key() }.into(),
        PolicyWritten { name: DEFAULT_POLICY.into(), text: DEFAULT_POLICY_TEXT.into() }.into(),
        TokenCreated {
            accessor: new_accessor()?,
            token_hash: keys.hash_token(root.expose()),
            parent_accessor: None,
            policies: vec![ROOT_POLICY.into()],
            display_name: "root".into(),
            ttl_ms: 0,
            explicit_max_ttl_ms: 0,
            expire_time_ms: None,
            renewable: false,
            num_uses: 0,
        }
        .into(),
    ];
    Ok((root, events))
}

/// Why a presented token cannot be used. Every variant reads as "permission
/// denied" to the caller; the detail goes to the audit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Unknown,
    Expired,
    UsesExhausted,
}

impl TokenRefusal {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "invalid token",
            TokenRefusal::Expired => "token expired",
            TokenRefusal::UsesExhausted => "token has no uses left",
        }
    }
}

/// May `token` be used at `now_ms`?
pub(crate) fn usable(token: &Token, now_ms: i64) -> Result<(), TokenRefusal> {
    if token.expire_time_ms.is_some_and(|t| t <= now_ms) {
        return Err(TokenRefusal::Expired);
    }
    if token.num_uses > 0 && token.uses >= token.num_uses {
        return Err(TokenRefusal::UsesExhausted);
    }
    Ok(())
}

/// Vault's display names: `token` for an unnamed child, `token-<name>` otherwise,
/// with characters outside `[A-Za-z0-9_-]` replaced, so the name is safe in a
/// database username template.
pub(crate) fn display_name(requested: Option<&str>) -> String {
    let cleaned: String = requested
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(DISPLAY_NAME_BYTES_MAX)
        .collect();
    if cleaned.is_empty() { "token".to_string() } else { format!("token-{cleaned}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_prefix_and_length_and_do_not_debug() {
        let s = TokenSecret::generate().unwrap();
        assert!(s.expose().starts_with("lsr."));
        assert_eq!(s.expose().len(), 4 + TOKEN_SECRET_CHARS);
        assert!(!format!("{s:?}").contains(&s.expose()[4..]));
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name(None), "token");
        assert_eq!(display_name(Some("app-A")), "token-app-A");
        assert_eq!(display_name(Some("a b'c")), "token-a-b-c");
    }
}
