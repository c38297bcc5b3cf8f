//! Templates: statement variables, the connection URL, and usernames.
//!
//! * [`render_statement`] fills `{{name}}` / `{{username}}`, `{{password}}` and
//!   `{{expiration}}` in one SQL statement. A variable the statement's context does
//!   not provide (`{{password}}` in a revocation statement) or an unknown
//!   `{{variable}}` is an error that names it.
//! * [`render_connection_url`] fills `{{username}}` / `{{password}}` in a
//!   `connection_url`, percent-encoded.
//! * [`UsernameTemplate`] is the subset of Go templates Vault's `username_template`
//!   uses; [`DEFAULT_USERNAME_TEMPLATE`] is Vault's default for PostgreSQL.
//!
//! # Why values are refused rather than escaped
//! Usernames and passwords come from the engine's own generators, whose character
//! sets are safe inside `"…"` and `'…'`. Substitution still checks every value and
//! refuses one holding a quote, a backslash, a `;`, NUL or a control character:
//! escaping would have to know where in the statement the variable sits (string,
//! identifier, dollar quote), and a refusal cannot be wrong. So a value like
//! `'; DROP TABLE x; --` never reaches SQL, whatever the template looks like.
//!
//! ```
//! use lessor_engine::text::template::{StatementVars, render_statement};
//!
//! let vars = StatementVars { name: Some("v-token-app-1"), password: Some("A1b-2c3D"), expiration: None };
//! let sql = render_statement("CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{ password }}'", &vars)?;
//! assert_eq!(sql, "CREATE ROLE \"v-token-app-1\" LOGIN PASSWORD 'A1b-2c3D'");
//!
//! let evil = StatementVars { password: Some("'; DROP TABLE x; --"), ..vars };
//! assert!(render_statement("ALTER ROLE x PASSWORD '{{password}}'", &evil).is_err());
//! # Ok::<(), lessor_engine::text::template::TemplateError>(())
//! ```

use std::fmt;

// The Go-template interpreter for usernames: a language of its own, in its own
// file; its items are this module's, so callers name one path.
mod username;

pub use username::{USERNAME_TEMPLATE_BYTES_MAX, USERNAME_VALUE_BYTES_MAX, UsernameContext, UsernameTemplate, random_source};
// What only tests and the fuzzer name.
#[cfg(any(test, feature = "testing"))]
pub use username::{DEFAULT_USERNAME_TEMPLATE, USERNAME_BYTES_MAX, USERNAME_TEMPLATE_NESTING_MAX, username_char_allowed};

/// The longest `{{ … }}` variable reference (name plus spaces) in a statement or URL.
const VARIABLE_BYTES_MAX: usize = 64;

/// Why a template was refused or could not be rendered. Never holds a value that
/// was substituted (it may be a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("unknown template variable {{{{{name}}}}}")]
    UnknownVariable { name: String },
    #[error("template variable {{{{{name}}}}} is not available here")]
    MissingVariable { name: String },
    #[error(
        "the value for {{{{{name}}}}} contains a quote, backslash, semicolon or control character; refusing to put it into SQL"
    )]
    UnsafeValue { name: String },
    #[error("username template is {bytes} bytes, over the limit of {USERNAME_TEMPLATE_BYTES_MAX}")]
    TemplateTooLong { bytes: usize },
    #[error("username template, byte {offset}: {detail}")]
    Syntax { offset: usize, detail: String },
    #[error("username template, byte {offset}: unknown function {name:?}")]
    UnknownFunction { offset: usize, name: String },
    #[error("username template, byte {offset}: unknown field .{name} (there are .DisplayName and .RoleName)")]
    UnknownField { offset: usize, name: String },
    #[error("username template, byte {offset}: {function} takes {expected} argument(s), got {found}")]
    Arity { offset: usize, function: &'static str, expected: usize, found: usize },
    #[error("username template: a value grew over {USERNAME_VALUE_BYTES_MAX} bytes")]
    ValueTooLong,
    #[error("username template produced an empty username")]
    EmptyUsername,
    #[error("username template produced {character:?}; usernames may hold only A-Z a-z 0-9 _ . -")]
    InvalidUsername { character: char },
}

// ---------------------------------------------------------------------------
// Statements and the connection URL

/// The values a statement may use; `None` for what its context does not provide
/// (revocation has only the name). `{{username}}` is another spelling of `{{name}}`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct StatementVars<'a> {
    pub name: Option<&'a str>,
    pub password: Option<&'a str>,
    pub expiration: Option<&'a str>,
}

impl fmt::Debug for StatementVars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementVars")
            .field("name", &self.name)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Fills a statement's `{{name}}`, `{{username}}`, `{{password}}` and
/// `{{expiration}}` (spaces inside the braces allowed: `{{ name }}`).
///
/// Braces that do not hold a name (`'{{1,2},{3,4}}'`, an array literal) are left
/// alone. Errors: an unknown variable, one `vars` does not provide, or a value with
/// a character that is never substituted (see the [module documentation](self)).
pub fn render_statement(template: &str, vars: &StatementVars<'_>) -> Result<String, TemplateError> {
    substitute(template, |name, out| {
        let value = match name {
            "name" | "username" => vars.name,
            "password" => vars.password,
            "expiration" => vars.expiration,
            _ => return Err(TemplateError::UnknownVariable { name: name.to_owned() }),
        };
        let value = value.ok_or_else(|| TemplateError::MissingVariable { name: name.to_owned() })?;
        if !value.chars().all(statement_value_char_allowed) {
            return Err(TemplateError::UnsafeValue { name: name.to_owned() });
        }
        out.push_str(value);
        Ok(())
    })
}

/// May `c` be substituted into a statement? Not a quote, backslash, `;`, NUL or
/// any control character.
pub(crate) fn statement_value_char_allowed(c: char) -> bool {
    !matches!(c, '\'' | '"' | '\\' | ';') && !c.is_control()
}

/// Fills a `connection_url`'s `{{username}}` and `{{password}}`, each
/// percent-encoded (every byte outside RFC 3986's unreserved set).
pub fn render_connection_url(template: &str, username: &str, password: &str) -> Result<String, TemplateError> {
    substitute(template, |name, out| {
        let value = match name {
            "username" => username,
            "password" => password,
            _ => return Err(TemplateError::UnknownVariable { name: name.to_owned() }),
        };
        percent_encode(value, out);
        Ok(())
    })
}

/// What a masked password reads as (Vault's mask).
pub(crate) const PASSWORD_MASK: &str = "*****";

/// `url` with every literal password replaced by [`PASSWORD_MASK`]: the one in a
/// URL's user info (`postgresql://user:secret@host`) and any `password=` keyword
/// or query parameter. A `{{password}}` placeholder is kept. New connections
/// cannot hold a literal password (it is refused when written); this is for
/// showing what older logs recorded.
pub(crate) fn mask_url_password(url: &str) -> String {
    let is_placeholder = |v: &str| v.chars().filter(|c| !c.is_whitespace()).collect::<String>() == "{{password}}";
    let mut out = url.to_string();
    if let Some(scheme_end) = url.find("://") {
        let start = scheme_end + 3;
        let end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
        if let Some(at) = url[start..end].rfind('@')
            && let Some(colon) = url[start..start + at].find(':')
        {
            let secret = &url[start + colon + 1..start + at];
            if !secret.is_empty() && !is_placeholder(secret) {
                out = format!("{}{PASSWORD_MASK}{}", &url[..start + colon + 1], &url[start + at..]);
            }
        }
    }
    // `password=` as a query parameter (`?…&password=x`) or a keyword (`password=x`
    // or `password='x y'`), up to the next separator.
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let boundary = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&' | b' ' | b'\t');
        let value_start = i + "password=".len();
        masked.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if !boundary {
            continue;
        }
        let value_end = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.find('\'').map_or(rest.len(), |j| j + 2)
        } else {
            rest.find(['&', ' ', '\t']).unwrap_or(rest.len())
        };
        let value = &rest[..value_end];
        masked.push_str(if value.is_empty() || is_placeholder(value.trim_matches('\'')) {
            value
        } else {
            PASSWORD_MASK
        });
        rest = &rest[value_end..];
    }
    masked.push_str(rest);
    masked
}

/// Appends `value` with every byte outside `A-Z a-z 0-9 - . _ ~` as `%XX`.
pub(crate) fn percent_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Copies `template`, handing every `{{ identifier }}` to `fill`. Other `{{`s are text.
fn substitute(
    template: &str,
    mut fill: impl FnMut(&str, &mut String) -> Result<(), TemplateError>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let window = &after[..floor_char_boundary(after, VARIABLE_BYTES_MAX + 2)];
        let name = window.find("}}").map(|close| (close, window[..close].trim_matches(|c| c == ' ' || c == '\t')));
        match name {
            Some((close, name)) if is_identifier(name) => {
                fill(name, &mut out)?;
                rest = &after[close + 2..];
            }
            _ => {
                // Not a variable: keep one brace, and look again from the next one.
                out.push('{');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Time

/// Vault's `{{expiration}}`: `YYYY-MM-DD HH:MM:SS+0000`, in UTC. The caller adds
/// the 5 s grace Vault gives.
pub fn expiration_text(unix_ms: i64) -> String {
    let t = crate::clock::Civil::from_unix_s(unix_ms.div_euclid(1000));
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}+0000", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(name: Option<&'a str>, password: Option<&'a str>, expiration: Option<&'a str>) -> StatementVars<'a> {
        StatementVars { name, password, expiration }
    }

    #[test]
    fn statement_variables() {
        let v = vars(Some("v-a"), Some("Pw-1"), Some("2030-01-02 03:04:05+0000"));
        let out = render_statement(
            "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT x TO \"{{ username }}\"",
            &v,
        )
        .unwrap();
        assert_eq!(
            out,
            "CREATE ROLE \"v-a\" PASSWORD 'Pw-1' VALID UNTIL '2030-01-02 03:04:05+0000'; GRANT x TO \"v-a\""
        );
        // Not variables: array literals, lone braces, unclosed braces.
        let literal = "SELECT '{{1,2},{3,4}}'::int[], '{', '}}', '{{' , '{{{name}}}'";
        assert_eq!(render_statement(literal, &v).unwrap(), "SELECT '{{1,2},{3,4}}'::int[], '{', '}}', '{{' , '{v-a}'");
    }

    #[test]
    fn statement_variable_errors() {
        let revoke = vars(Some("v-a"), None, None);
        assert_eq!(
            render_statement("ALTER ROLE x PASSWORD '{{password}}'", &revoke),
            Err(TemplateError::MissingVariable { name: "password".into() })
        );
        assert_eq!(
            render_statement("DROP ROLE \"{{ nmae }}\"", &revoke),
            Err(TemplateError::UnknownVariable { name: "nmae".into() })
        );
        assert_eq!(
            render_statement("{{Name}}", &revoke).unwrap_err().to_string(),
            "unknown template variable {{Name}}"
        );
        let missing = render_statement("{{expiration}}", &revoke).unwrap_err();
        assert_eq!(missing.to_string(), "template variable {{expiration}} is not available here");
    }

    #[test]
    fn unsafe_values_are_refused() {
        for bad in ["'; DROP TABLE x; --", "a\"b", "a\\b", "a;b", "a\0b", "a\nb", "a\u{7f}", "a\u{85}b"] {
            let v = vars(Some("ok"), Some(bad), None);
            let err = render_statement("ALTER ROLE \"{{name}}\" PASSWORD '{{password}}'", &v).unwrap_err();
            assert_eq!(err, TemplateError::UnsafeValue { name: "password".into() }, "{bad:?}");
            assert!(!err.to_string().contains(bad), "the error must not quote the value");
        }
        // Only variables that are used are checked.
        let v = vars(Some("ok"), Some("'"), None);
        assert_eq!(render_statement("DROP ROLE \"{{name}}\"", &v).unwrap(), "DROP ROLE \"ok\"");
    }

    #[test]
    fn debug_redacts_the_password() {
        let v = vars(Some("n"), Some("hunter2"), None);
        assert!(!format!("{v:?}").contains("hunter2"));
    }

    #[test]
    fn expiration_format() {
        assert_eq!(expiration_text(0), "1970-01-01 00:00:00+0000");
        assert_eq!(expiration_text(1_693_258_841_999), "2023-08-28 21:40:41+0000");
        assert_eq!(expiration_text(951_782_400_000), "2000-02-29 00:00:00+0000");
        assert_eq!(expiration_text(4_107_542_399_000), "2100-02-28 23:59:59+0000");
        assert_eq!(expiration_text(-1), "1969-12-31 23:59:59+0000");
    }

    #[test]
    fn literal_passwords_in_urls_are_masked() {
        use super::mask_url_password as mask;
        assert_eq!(mask("postgresql://admin:adminpw@db:5432/app"), "postgresql://admin:*****@db:5432/app");
        assert_eq!(
            mask("postgresql://admin:p%40ss@db/app?sslmode=require"),
            "postgresql://admin:*****@db/app?sslmode=require"
        );
        assert_eq!(
            mask("postgresql://{{username}}:{{password}}@db/app"),
            "postgresql://{{username}}:{{password}}@db/app"
        );
        assert_eq!(mask("postgresql://admin@db/app"), "postgresql://admin@db/app");
        assert_eq!(
            mask("postgresql://db/app?user=a&password=hunter2&x=1"),
            "postgresql://db/app?user=a&password=*****&x=1"
        );
        assert_eq!(mask("host=db password='a b' user=x"), "host=db password=***** user=x");
        assert_eq!(mask("host=db password={{password}}"), "host=db password={{password}}");
        assert_eq!(mask("host=db oldpassword=x"), "host=db oldpassword=x");
    }

    #[test]
    fn connection_url() {
        let url = render_connection_url(
            "postgresql://{{username}}:{{ password }}@db.example.com:5432/postgres?sslmode=require",
            "vault_admin",
            "s3cr3t/:@?#% é~",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://vault_admin:s3cr3t%2F%3A%40%3F%23%25%20%C3%A9~@db.example.com:5432/postgres?sslmode=require"
        );
        assert_eq!(
            render_connection_url("postgresql://{{name}}@h/db", "u", "p"),
            Err(TemplateError::UnknownVariable { name: "name".into() })
        );
        assert_eq!(render_connection_url("postgresql://h/db", "u", "p").unwrap(), "postgresql://h/db");
    }
}
