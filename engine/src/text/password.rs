//! Password policies and the passwords they generate.
//!
//! A [`PasswordPolicy`] is Vault's: a length and `charset` rules, each with a
//! minimum count. The default is Vault's: 20 characters from `[A-Za-z0-9-]` with at
//! least one upper-case letter, lower-case letter, digit and `-`. Policies are
//! limited to characters that are safe inside a SQL string literal and that
//! [`render_statement`](super::template::render_statement) substitutes, so a
//! generated password never fails there. The caller passes the random bytes
//! (`fill`); every character is chosen without bias ([`super::random`]).
//!
//! ```
//! use lessor_engine::text::password::{PasswordPolicy, generate_password};
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
//! # Ok::<(), lessor_engine::text::password::PasswordPolicyError>(())
//! ```

use super::quoted::{HCL_ESCAPES, quoted};
use super::random::Picker;

/// The shortest password a policy may ask for.
pub(crate) const PASSWORD_CHARS_MIN: usize = 8;
/// The longest password a policy may ask for.
pub(crate) const PASSWORD_CHARS_MAX: usize = 128;
/// The longest password policy text accepted.
pub(crate) const PASSWORD_POLICY_TEXT_BYTES_MAX: usize = 4096;
/// The most `rule "charset"` blocks a policy may have.
pub(crate) const PASSWORD_POLICY_RULES_MAX: usize = 16;

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
pub(crate) struct CharsetRule {
    /// The characters, without duplicates, in their first order.
    charset: Vec<u8>,
    min_chars: usize,
}

#[cfg(test)]
impl CharsetRule {
    pub(crate) fn charset(&self) -> &str {
        std::str::from_utf8(&self.charset).expect("charsets are ASCII")
    }

    pub(crate) fn min_chars(&self) -> usize {
        self.min_chars
    }
}

/// Why a password policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    pub(crate) fn new(length: usize, rules: &[(&str, usize)]) -> Result<Self, PasswordPolicyError> {
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

    #[cfg(test)]
    pub(crate) fn length(&self) -> usize {
        self.length
    }

    #[cfg(test)]
    pub(crate) fn rules(&self) -> &[CharsetRule] {
        &self.rules
    }

    /// Every character a password may hold, sorted.
    #[cfg(test)]
    pub(crate) fn charset(&self) -> &str {
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
        let (value, end) = quoted(self.text, at, HCL_ESCAPES).map_err(|e| self.syntax(e.offset(), e.to_string()))?;
        self.pos = end;
        Ok(value)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::random::seeded;

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
    fn generated_passwords_are_safe_statement_values() {
        let policy = PasswordPolicy::new(128, &[("!#$%&()*+,-./:<=>?@[]^_`{|}~", 1), ("a", 0)]).unwrap();
        let password = generate_password(&policy, &mut seeded(11));
        assert!(password.chars().all(crate::text::template::statement_value_char_allowed));
    }
}
