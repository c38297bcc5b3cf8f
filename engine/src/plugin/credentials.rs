//! Passwords and random strings from a caller-supplied byte source.
//!
//! The caller passes the random bytes (`fill`): the operating system's CSPRNG in
//! the engine, a deterministic source in tests. Every character is chosen without
//! bias: a byte is used only when it falls below the largest multiple of the
//! alphabet's size that fits in a byte, otherwise another is drawn.
//!
//! A [`PasswordPolicy`] is Vault's: a length and `charset` rules, each with a
//! minimum count. The default is Vault's: 20 characters from `[A-Za-z0-9-]` with at
//! least one upper-case letter, lower-case letter, digit and `-`. Policies are
//! limited to characters that are safe inside a SQL string literal and that
//! [`render_statement`](super::template::render_statement) substitutes, so a
//! generated password never fails there.
//!
//! ```
//! use lessor_engine::plugin::credentials::{PasswordPolicy, generate_password};
//!
//! let policy = PasswordPolicy::parse(r#"
//!     length = 24
//!     rule "charset" { charset = "abcdefghijklmnopqrstuvwxyz" }
//!     rule "charset" {
//!       charset   = "0123456789"
//!       min-chars = 4
//!     }
//! "#)?;
//! let mut fill = |buf: &mut [u8]| getrandom::fill(buf).expect("OS random");
//! let password = generate_password(&policy, &mut fill);
//! assert_eq!(password.len(), 24);
//! assert!(password.chars().filter(char::is_ascii_digit).count() >= 4);
//! # Ok::<(), lessor_engine::plugin::credentials::PasswordPolicyError>(())
//! ```

use zeroize::Zeroize;

/// The shortest password a policy may ask for.
pub const PASSWORD_CHARS_MIN: usize = 8;
/// The longest password a policy may ask for.
pub const PASSWORD_CHARS_MAX: usize = 128;
/// The most characters [`random_alnum`] (`{{random N}}`) produces.
pub const RANDOM_CHARS_MAX: usize = 64;
/// The longest password policy text accepted.
pub const PASSWORD_POLICY_TEXT_BYTES_MAX: usize = 4096;
/// The most `rule "charset"` blocks a policy may have.
pub const PASSWORD_POLICY_RULES_MAX: usize = 16;
/// Drawing this many unusable bytes in a row means the byte source is broken.
const REJECTED_BYTES_MAX: usize = 1024;

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A password policy: `length` characters, with at least `min_chars` from each
/// rule's charset, every character from the union of the charsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    length: usize,
    rules: Vec<CharsetRule>,
    /// The union of the rules' charsets, sorted, without duplicates.
    charset: Vec<u8>,
}

/// `rule "charset" { charset = "…" min-chars = N }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    /// The characters, without duplicates, in their first order.
    charset: Vec<u8>,
    min_chars: usize,
}

impl CharsetRule {
    pub fn charset(&self) -> &str {
        std::str::from_utf8(&self.charset).expect("charsets are ASCII")
    }

    pub fn min_chars(&self) -> usize {
        self.min_chars
    }
}

/// Why a password policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("password policy is {bytes} bytes, over the limit of {PASSWORD_POLICY_TEXT_BYTES_MAX}")]
    TooLong { bytes: usize },
    #[error("password policy, line {line}, column {column}: {detail}")]
    Syntax { line: usize, column: usize, detail: String },
    #[error("password policy: unsupported {found}; a policy has `length` and `rule \"charset\"` blocks")]
    Unsupported { found: String },
    #[error("password policy: {field} must be a whole number")]
    NotANumber { field: &'static str },
    #[error("password policy: `length` is missing")]
    MissingLength,
    #[error("password policy: `length` appears more than once")]
    DuplicateLength,
    #[error("password policy: length {length} is outside {PASSWORD_CHARS_MIN}..={PASSWORD_CHARS_MAX}")]
    Length { length: u64 },
    #[error("password policy: no `rule \"charset\"` block")]
    NoRules,
    #[error("password policy: more than {PASSWORD_POLICY_RULES_MAX} rules")]
    TooManyRules,
    #[error("password policy: a rule's `charset` is missing or empty")]
    EmptyCharset,
    #[error(
        "password policy: charset character {character:?} is not allowed (no quotes, backslash, `;`, spaces or non-ASCII: passwords go into SQL)"
    )]
    UnsafeCharacter { character: char },
    #[error("password policy: the rules need {min_chars} characters, more than the length {length}")]
    MinCharsOverLength { min_chars: u64, length: usize },
}

impl Default for PasswordPolicy {
    /// Vault's default: 20 characters, at least one of each of `A-Z`, `a-z`, `0-9`
    /// and `-`.
    fn default() -> Self {
        // Built once: every issue without a policy of its own asks for it.
        static DEFAULT: std::sync::LazyLock<PasswordPolicy> = std::sync::LazyLock::new(|| {
            PasswordPolicy::new(
                20,
                &[("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1), ("abcdefghijklmnopqrstuvwxyz", 1), ("0123456789", 1), ("-", 1)],
            )
            .expect("the default password policy is valid")
        });
        DEFAULT.clone()
    }
}

/// May a policy charset hold `b`? Printable ASCII except quotes, `\` and `;`.
fn charset_byte_allowed(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'\'' | b'"' | b'\\' | b';')
}

impl PasswordPolicy {
    /// A policy from its length and `(charset, min_chars)` rules.
    pub fn new(length: usize, rules: &[(&str, usize)]) -> Result<Self, PasswordPolicyError> {
        if !(PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&length) {
            return Err(PasswordPolicyError::Length { length: length as u64 });
        }
        if rules.is_empty() {
            return Err(PasswordPolicyError::NoRules);
        }
        if rules.len() > PASSWORD_POLICY_RULES_MAX {
            return Err(PasswordPolicyError::TooManyRules);
        }
        let min_chars = rules.iter().map(|&(_, n)| n as u64).fold(0u64, u64::saturating_add);
        if min_chars > length as u64 {
            return Err(PasswordPolicyError::MinCharsOverLength { min_chars, length });
        }
        let mut union = Vec::new();
        let mut checked = Vec::with_capacity(rules.len());
        for &(charset, min_chars) in rules {
            if let Some(character) = charset.chars().find(|&c| !u8::try_from(c).is_ok_and(charset_byte_allowed)) {
                return Err(PasswordPolicyError::UnsafeCharacter { character });
            }
            let mut unique = Vec::new();
            for b in charset.bytes() {
                if !unique.contains(&b) {
                    unique.push(b);
                }
            }
            if unique.is_empty() {
                return Err(PasswordPolicyError::EmptyCharset);
            }
            union.extend_from_slice(&unique);
            checked.push(CharsetRule { charset: unique, min_chars });
        }
        union.sort_unstable();
        union.dedup();
        Ok(PasswordPolicy { length, rules: checked, charset: union })
    }

    /// Parses a Vault password policy, restricted to its one shape:
    ///
    /// ```hcl
    /// length = 24
    /// rule "charset" {
    ///   charset   = "abcdefghijklmnopqrstuvwxyz"
    ///   min-chars = 1
    /// }
    /// ```
    ///
    /// As in Vault (HCL 1), newlines and commas between items are optional, so
    /// `length = 8 rule "charset" { charset = "abc" min-chars = 1 }` is one valid
    /// line; `#`, `//` and `/* */` comments are allowed. `min-chars` defaults to 0.
    /// Charsets may hold printable ASCII except `'`, `"`, `\` and `;`.
    pub fn parse(text: &str) -> Result<Self, PasswordPolicyError> {
        if text.len() > PASSWORD_POLICY_TEXT_BYTES_MAX {
            return Err(PasswordPolicyError::TooLong { bytes: text.len() });
        }
        let mut lexer = Lexer { text, pos: 0 };
        let mut length = None;
        let mut rules: Vec<(String, usize)> = Vec::new();
        loop {
            let (at, token) = lexer.next()?;
            let key = match token {
                Token::End => break,
                Token::Comma => continue,
                Token::Ident(key) => key,
                other => return Err(lexer.unexpected(at, &other)),
            };
            match (key, lexer.next()?) {
                ("length", (_, Token::Equals)) => {
                    if length.is_some() {
                        return Err(PasswordPolicyError::DuplicateLength);
                    }
                    length = Some(lexer.number("length")?);
                }
                ("rule", (_, Token::Str(label))) => {
                    if label != "charset" {
                        return Err(unsupported("rule", &label));
                    }
                    if rules.len() >= PASSWORD_POLICY_RULES_MAX {
                        return Err(PasswordPolicyError::TooManyRules);
                    }
                    match lexer.next()? {
                        (_, Token::Open) => {}
                        (at, other) => return Err(lexer.unexpected(at, &other)),
                    }
                    rules.push(lexer.charset_rule()?);
                }
                (key, (_, Token::Equals)) => return Err(unsupported("attribute", key)),
                (key, (_, Token::Str(_) | Token::Open)) => return Err(unsupported("block", key)),
                (_, (at, other)) => return Err(lexer.unexpected(at, &other)),
            }
        }
        let length = length.ok_or(PasswordPolicyError::MissingLength)?;
        let length = usize::try_from(length)
            .ok()
            .filter(|l| (PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(l))
            .ok_or(PasswordPolicyError::Length { length })?;
        let rules: Vec<(&str, usize)> = rules.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        PasswordPolicy::new(length, &rules)
    }

    pub fn length(&self) -> usize {
        self.length
    }

    pub fn rules(&self) -> &[CharsetRule] {
        &self.rules
    }

    /// Every character a password may hold, sorted.
    pub fn charset(&self) -> &str {
        std::str::from_utf8(&self.charset).expect("charsets are ASCII")
    }
}

fn unsupported(what: &str, name: &str) -> PasswordPolicyError {
    let name: String = name.chars().take(64).collect();
    PasswordPolicyError::Unsupported { found: format!("{what} {name:?}") }
}

/// A token of the policy language.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    Str(String),
    /// Digits, possibly followed by more number-ish characters (`8.5`, `1e3`).
    Number(&'a str),
    Equals,
    Open,
    Close,
    Comma,
    End,
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn syntax(&self, at: usize, detail: impl Into<String>) -> PasswordPolicyError {
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.chars().count(), |nl| before[nl + 1..].chars().count()) + 1;
        PasswordPolicyError::Syntax { line, column, detail: detail.into() }
    }

    fn unexpected(&self, at: usize, token: &Token<'_>) -> PasswordPolicyError {
        let found = match token {
            Token::Ident(_) => "a name",
            Token::Str(_) => "a string",
            Token::Number(_) => "a number",
            Token::Equals => "`=`",
            Token::Open => "`{`",
            Token::Close => "`}`",
            Token::Comma => "`,`",
            Token::End => "the end",
        };
        self.syntax(at, format!("unexpected {found}"))
    }

    /// The next token and its offset, after spaces and comments.
    fn next(&mut self) -> Result<(usize, Token<'a>), PasswordPolicyError> {
        let bytes = self.text.as_bytes();
        loop {
            let rest = &bytes[self.pos..];
            if rest.first().is_some_and(u8::is_ascii_whitespace) {
                self.pos += 1;
            } else if rest.starts_with(b"#") || rest.starts_with(b"//") {
                self.pos += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            } else if rest.starts_with(b"/*") {
                let Some(end) = self.text[self.pos + 2..].find("*/") else {
                    return Err(self.syntax(self.pos, "unterminated comment"));
                };
                self.pos += 2 + end + 2;
            } else {
                break;
            }
        }
        let at = self.pos;
        let Some(&b) = bytes.get(at) else {
            return Ok((at, Token::End));
        };
        let run = |from: usize, keep: fn(u8) -> bool| {
            from + bytes[from..].iter().position(|&b| !keep(b)).unwrap_or(bytes.len() - from)
        };
        let token = match b {
            b'=' => Token::Equals,
            b'{' => Token::Open,
            b'}' => Token::Close,
            b',' => Token::Comma,
            b'"' => return self.string(at).map(|s| (at, Token::Str(s))),
            b if b.is_ascii_digit() => {
                let end = run(at, |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_'));
                self.pos = end;
                return Ok((at, Token::Number(&self.text[at..end])));
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let end = run(at, |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
                self.pos = end;
                return Ok((at, Token::Ident(&self.text[at..end])));
            }
            _ => {
                let c = self.text[at..].chars().next().unwrap_or('?');
                return Err(self.syntax(at, format!("unexpected {c:?}")));
            }
        };
        self.pos += 1;
        Ok((at, token))
    }

    /// A `"…"` string at `at`, with `\\ \" \n \t \r` escapes.
    fn string(&mut self, at: usize) -> Result<String, PasswordPolicyError> {
        let mut out = String::new();
        let mut chars = self.text[at + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = at + 1 + i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => out.push('\\'),
                    Some('"') => out.push('"'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    _ => return Err(self.syntax(at + 1 + i, "unsupported escape (use \\\\ \\\" \\n \\t \\r)")),
                },
                '\n' => break,
                c => out.push(c),
            }
        }
        Err(self.syntax(at, "unterminated string"))
    }

    /// After an `=`: a whole number.
    fn number(&mut self, field: &'static str) -> Result<u64, PasswordPolicyError> {
        match self.next()? {
            (_, Token::Number(digits)) => digits.parse().map_err(|_| PasswordPolicyError::NotANumber { field }),
            (_, Token::Str(_) | Token::Ident(_)) => Err(PasswordPolicyError::NotANumber { field }),
            (at, other) => Err(self.unexpected(at, &other)),
        }
    }

    /// The body of a `rule "charset" {`, through its `}`.
    fn charset_rule(&mut self) -> Result<(String, usize), PasswordPolicyError> {
        let mut charset = None;
        let mut min_chars = None;
        loop {
            let (at, token) = self.next()?;
            let key = match token {
                Token::Close => break,
                Token::Comma => continue,
                Token::Ident(key) => key,
                other => return Err(self.unexpected(at, &other)),
            };
            match (key, self.next()?) {
                ("charset", (at, Token::Equals)) => {
                    if charset.is_some() {
                        return Err(self.syntax(at, "`charset` appears twice in one rule"));
                    }
                    match self.next()? {
                        (_, Token::Str(s)) => charset = Some(s),
                        (at, other) => return Err(self.unexpected(at, &other)),
                    }
                }
                ("min-chars", (at, Token::Equals)) => {
                    if min_chars.is_some() {
                        return Err(self.syntax(at, "`min-chars` appears twice in one rule"));
                    }
                    min_chars = Some(self.number("min-chars")?);
                }
                (key, (_, Token::Equals)) => return Err(unsupported("rule attribute", key)),
                (key, (_, Token::Str(_) | Token::Open)) => return Err(unsupported("block", key)),
                (_, (at, other)) => return Err(self.unexpected(at, &other)),
            }
        }
        let charset = charset.ok_or(PasswordPolicyError::EmptyCharset)?;
        Ok((charset, usize::try_from(min_chars.unwrap_or(0)).unwrap_or(usize::MAX)))
    }
}

/// A password for `policy`. Each rule's minimum is drawn from its charset, the rest
/// from the union, and the whole is shuffled (Fisher–Yates), every choice unbiased.
///
/// # Panics
/// If `fill` returns 1024 unusable bytes in a row (e.g. only `0xff`): a broken
/// random source must not produce passwords.
pub fn generate_password(policy: &PasswordPolicy, fill: &mut dyn FnMut(&mut [u8])) -> String {
    let mut picker = Picker::new(fill);
    let mut password = Vec::with_capacity(policy.length);
    for rule in &policy.rules {
        for _ in 0..rule.min_chars {
            password.push(rule.charset[picker.below(rule.charset.len())]);
        }
    }
    while password.len() < policy.length {
        password.push(policy.charset[picker.below(policy.charset.len())]);
    }
    for i in (1..password.len()).rev() {
        password.swap(i, picker.below(i + 1));
    }
    String::from_utf8(password).expect("charsets are ASCII")
}

/// `n` random characters from `[A-Za-z0-9]`, for `{{random N}}`.
///
/// # Panics
/// If `n` is over [`RANDOM_CHARS_MAX`] (templates are checked for that when
/// parsed), or as [`generate_password`] on a broken source.
pub fn random_alnum(n: usize, fill: &mut dyn FnMut(&mut [u8])) -> String {
    assert!(n <= RANDOM_CHARS_MAX, "random_alnum({n}): at most {RANDOM_CHARS_MAX} characters");
    let mut picker = Picker::new(fill);
    (0..n).map(|_| char::from(ALNUM[picker.below(ALNUM.len())])).collect()
}

/// PostgreSQL's iteration count for SCRAM-SHA-256 verifiers (its
/// `scram_iterations` default, fixed at 4096 before PostgreSQL 16).
pub const SCRAM_ITERATIONS_DEFAULT: u32 = 4096;
/// The fewest iterations a verifier may use (PostgreSQL accepts any count ≥ 1).
pub const SCRAM_ITERATIONS_MIN: u32 = 1;
/// The most iterations lessor computes: the verifier is computed on every issue,
/// so the count bounds the CPU one request may take (I7). About 0.4 s at this count
/// on the benchmark machine.
pub const SCRAM_ITERATIONS_MAX: u32 = 1_000_000;
/// Bytes of salt in a verifier: PostgreSQL's `SCRAM_DEFAULT_SALT_LEN`.
pub const SCRAM_SALT_BYTES: usize = 16;

/// A SCRAM-SHA-256 verifier for `password`, in PostgreSQL's `pg_authid` form
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, with a fresh salt
/// from `fill`. Given to `CREATE ROLE … PASSWORD`, the server stores it as it is: the
/// password never reaches the server, and the key stretching (PBKDF2, `iterations`
/// rounds of HMAC-SHA-256) is paid here instead of there.
///
/// Why the count is a setting: key stretching slows down guessing a *weak* password
/// from a stolen verifier. lessor's passwords are machine-generated (the default
/// policy draws 20 characters from 63: about 119 bits), so guessing is out of reach
/// at any count and stretching adds no protection; what it does add is CPU on every
/// issue (here) and on every login (on the server). A low count buys throughput; the
/// default stays PostgreSQL's.
///
/// The password must be printable ASCII (every password policy is): PostgreSQL
/// applies SASLprep to the password at login, which leaves printable ASCII as it
/// is, so the bytes are hashed directly. Anything else gives `None`.
pub fn scram_sha256_verifier(password: &str, iterations: u32, fill: &mut dyn FnMut(&mut [u8])) -> Option<String> {
    if !password.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return None;
    }
    let mut salt = [0u8; SCRAM_SALT_BYTES];
    fill(&mut salt);
    Some(scram_sha256_verifier_with_salt(password, iterations.max(SCRAM_ITERATIONS_MIN), &salt))
}

/// [`scram_sha256_verifier`] with a given salt (deterministic, for tests).
pub fn scram_sha256_verifier_with_salt(password: &str, iterations: u32, salt: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    use sha2::Digest;
    type HmacSha256 = hmac::Hmac<sha2::Sha256>;

    // PBKDF2-HMAC-SHA-256 with one 32-byte block. The keyed HMAC state is built
    // once and cloned per round, so a round costs two compressions, not four.
    let keyed = HmacSha256::new_from_slice(password.as_bytes()).expect("HMAC takes any key length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut salted = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (s, b) in salted.iter_mut().zip(u.iter()) {
            *s ^= b;
        }
    }
    let key_mac = |label: &[u8]| -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&salted).expect("HMAC takes any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    };
    let client_key = key_mac(b"Client Key");
    let stored_key: [u8; 32] = sha2::Sha256::digest(client_key).into();
    let server_key = key_mac(b"Server Key");
    salted.zeroize();
    u.zeroize();
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        base64_encode(salt),
        base64_encode(&stored_key),
        base64_encode(&server_key)
    )
}

/// Standard base64 with padding (RFC 4648), as PostgreSQL writes verifiers.
fn base64_encode(bytes: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Unbiased indexes from a byte source, drawn in blocks; the block is wiped after.
struct Picker<'f> {
    fill: &'f mut dyn FnMut(&mut [u8]),
    block: [u8; 64],
    used: usize,
}

impl<'f> Picker<'f> {
    fn new(fill: &'f mut dyn FnMut(&mut [u8])) -> Self {
        Picker { fill, block: [0; 64], used: 64 }
    }

    /// A uniform index in `0..n`, `1 <= n <= 256`.
    fn below(&mut self, n: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic byte source: a simple xorshift, good enough to spread values.
    fn seeded(mut state: u64) -> impl FnMut(&mut [u8]) {
        move |buf: &mut [u8]| {
            for b in buf {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = (state >> 32) as u8;
            }
        }
    }

    #[test]
    fn default_policy_meets_its_rules() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.length(), 20);
        assert_eq!(policy.charset().len(), 63);
        for seed in 1..500 {
            let password = generate_password(&policy, &mut seeded(seed));
            assert_eq!(password.len(), 20);
            assert!(password.chars().any(|c| c.is_ascii_uppercase()), "{password}");
            assert!(password.chars().any(|c| c.is_ascii_lowercase()), "{password}");
            assert!(password.chars().any(|c| c.is_ascii_digit()), "{password}");
            assert!(password.contains('-'), "{password}");
            assert!(password.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{password}");
        }
    }

    #[test]
    fn deterministic_for_a_given_source() {
        let policy = PasswordPolicy::default();
        let a = generate_password(&policy, &mut seeded(7));
        assert_eq!(a, generate_password(&policy, &mut seeded(7)));
        assert_ne!(a, generate_password(&policy, &mut seeded(8)));
    }

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

    #[test]
    fn parse_vault_policy() {
        let policy = PasswordPolicy::parse(
            r#"
            length = 24
            rule "charset" {
              charset = "abcdefghijklmnopqrstuvwxyz"
              min-chars = 1
            }
            rule "charset" {
              charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
              min-chars = 1
            }
            rule "charset" {
              charset = "0123456789"
              min-chars = 1
            }
            rule "charset" {
              charset = "!@#$%^&*"
              min-chars = 2
            }
            "#,
        )
        .unwrap();
        assert_eq!(policy.length(), 24);
        assert_eq!(policy.rules().len(), 4);
        assert_eq!(policy.rules()[3].charset(), "!@#$%^&*");
        assert_eq!(policy.rules()[3].min_chars(), 2);
        for seed in 1..200 {
            let password = generate_password(&policy, &mut seeded(seed));
            assert_eq!(password.len(), 24);
            assert!(password.chars().filter(|c| "!@#$%^&*".contains(*c)).count() >= 2, "{password}");
        }
        // Vault's HCL 1 needs no newlines; comments are allowed.
        let one_line = r#"length = 24 rule "charset" { charset = "abc" min-chars = 1 } # comment
            // another
            /* and another */ rule "charset" { charset = "XYZ", min-chars = 2 }"#;
        let policy = PasswordPolicy::parse(one_line).unwrap();
        assert_eq!(policy.length(), 24);
        assert_eq!(policy.charset(), "XYZabc");
        assert_eq!(policy.rules()[1].min_chars(), 2);
        // min-chars defaults to 0; duplicate characters are fine.
        let policy = PasswordPolicy::parse("length = 8\nrule \"charset\" { charset = \"aab\" }").unwrap();
        assert_eq!(policy.charset(), "ab");
        assert_eq!(policy.rules()[0].min_chars(), 0);
    }

    #[test]
    fn parse_errors() {
        let err = |t: &str| PasswordPolicy::parse(t).unwrap_err();
        let rule = "rule \"charset\" { charset = \"abc\" }";
        assert_eq!(err(rule), PasswordPolicyError::MissingLength);
        assert_eq!(err(&format!("length = 7\n{rule}")), PasswordPolicyError::Length { length: 7 });
        assert_eq!(err(&format!("length = 129\n{rule}")), PasswordPolicyError::Length { length: 129 });
        assert_eq!(err("length = 20"), PasswordPolicyError::NoRules);
        assert_eq!(err(&format!("length = 8.5\n{rule}")), PasswordPolicyError::NotANumber { field: "length" });
        assert_eq!(err(&format!("length = \"8\"\n{rule}")), PasswordPolicyError::NotANumber { field: "length" });
        assert_eq!(err(&format!("length = 8\nlength = 9\n{rule}")), PasswordPolicyError::DuplicateLength);
        assert!(matches!(err(&format!("length = 8\nfoo = 1\n{rule}")), PasswordPolicyError::Unsupported { .. }));
        assert!(matches!(
            err("length = 8\nrule \"other\" { charset = \"a\" }"),
            PasswordPolicyError::Unsupported { .. }
        ));
        assert!(matches!(
            err("length = 8\nrule \"charset\" {\n charset = \"a\"\n max-chars = 2\n}"),
            PasswordPolicyError::Unsupported { .. }
        ));
        assert_eq!(err("length = 8\nrule \"charset\" { min-chars = 1 }"), PasswordPolicyError::EmptyCharset);
        assert_eq!(err("length = 8\nrule \"charset\" { charset = \"\" }"), PasswordPolicyError::EmptyCharset);
        assert_eq!(
            err("length = 8\nrule \"charset\" { charset = \"ab\" min-chars = 9 }"),
            PasswordPolicyError::MinCharsOverLength { min_chars: 9, length: 8 }
        );
        assert_eq!(
            err("length = 8\n  rule \"charset\" { charset = abc }"),
            PasswordPolicyError::Syntax { line: 2, column: 30, detail: "unexpected a name".into() }
        );
        for bad in
            ["length = ", "length 8", "length = 8 rule \"charset\" { charset = \"a\"", "length = 8 /*", "length = 8 @"]
        {
            assert!(matches!(err(bad), PasswordPolicyError::Syntax { .. }), "{bad}: {:?}", err(bad));
        }
        assert!(matches!(
            err(&format!("length = 8\n{rule}\n{rule}\n").replace("{ charset", "{ charset = \"b\" charset")),
            PasswordPolicyError::Syntax { .. }
        ));
        for (charset, bad) in [("ab'", '\''), ("a\\\"", '"'), ("a\\\\", '\\'), ("a;", ';'), ("a b", ' '), ("aé", 'é')]
        {
            let text = format!("length = 8\nrule \"charset\" {{ charset = \"{charset}\" }}");
            assert_eq!(err(&text), PasswordPolicyError::UnsafeCharacter { character: bad }, "{text}");
        }
        assert!(matches!(err(&"x".repeat(PASSWORD_POLICY_TEXT_BYTES_MAX + 1)), PasswordPolicyError::TooLong { .. }));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }

    /// The verifier equals the one postgres-protocol (tokio-postgres's own SCRAM
    /// code, 4096 rounds) computes for the same password and salt.
    #[test]
    fn scram_verifier_matches_postgres_protocol_at_4096() {
        for password in
            ["Probe-Password-1", "a", "A-very-long-password-with-128-chars-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
        {
            let theirs = postgres_protocol::password::scram_sha_256(password.as_bytes());
            // SCRAM-SHA-256$4096:<salt>$<stored>:<server>
            let salt_b64 = theirs.split('$').nth(1).unwrap().split(':').nth(1).unwrap();
            let salt = base64_decode_for_test(salt_b64);
            assert_eq!(scram_sha256_verifier_with_salt(password, 4096, &salt), theirs);
        }
    }

    #[test]
    fn scram_verifier_shape_and_iterations() {
        let v = scram_sha256_verifier("Probe-Password-1", 16, &mut seeded(5)).unwrap();
        assert!(v.starts_with("SCRAM-SHA-256$16:"), "{v}");
        let parts: Vec<&str> = v.split(['$', ':']).collect();
        assert_eq!(parts.len(), 5, "{v}");
        assert_eq!(base64_decode_for_test(parts[2]).len(), SCRAM_SALT_BYTES);
        assert_eq!(base64_decode_for_test(parts[3]).len(), 32);
        assert_eq!(base64_decode_for_test(parts[4]).len(), 32);
        // Fresh salt, fresh verifier; the count changes the keys.
        assert_ne!(v, scram_sha256_verifier("Probe-Password-1", 16, &mut seeded(6)).unwrap());
        let salt = [7u8; SCRAM_SALT_BYTES];
        assert_ne!(
            scram_sha256_verifier_with_salt("p", 1, &salt).split('$').nth(2),
            scram_sha256_verifier_with_salt("p", 2, &salt).split('$').nth(2)
        );
        assert_eq!(scram_sha256_verifier("pässword", 16, &mut seeded(5)), None);
    }

    fn base64_decode_for_test(text: &str) -> Vec<u8> {
        use ::base64::Engine as _;
        ::base64::engine::general_purpose::STANDARD.decode(text).unwrap()
    }

    #[test]
    fn generated_passwords_are_safe_statement_values() {
        let policy = PasswordPolicy::new(128, &[("!#$%&()*+,-./:<=>?@[]^_`{|}~", 1), ("a", 0)]).unwrap();
        let password = generate_password(&policy, &mut seeded(11));
        assert!(password.chars().all(super::super::template::statement_value_char_allowed));
    }
}
