//! Username templates: the subset of Go's `text/template` that Vault's
//! `username_template` uses, parsed once and rendered per issue (see
//! [`UsernameTemplate`]).

use std::fmt;

use sha2::{Digest, Sha256};

use super::{TemplateError, VARIABLE_BYTES_MAX, floor_char_boundary};
use crate::text::quoted::{GO_ESCAPES, quoted};
use crate::text::random::{RANDOM_CHARS_MAX, random_alnum};

/// Vault's default `username_template` for PostgreSQL:
/// `v-<display name, 8>-<role, 8>-<20 random>-<unix time>`, at most 63 bytes.
pub const DEFAULT_USERNAME_TEMPLATE: &str = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#;
/// PostgreSQL's identifier limit (NAMEDATALEN - 1): usernames are cut to it.
pub const USERNAME_BYTES_MAX: usize = 63;
/// The longest `username_template` accepted.
pub const USERNAME_TEMPLATE_BYTES_MAX: usize = 4096;
/// The longest value any step of a username template may produce.
pub const USERNAME_VALUE_BYTES_MAX: usize = 4096;
/// How deeply `( … )` may nest in a username template, and how many `|` stages one
/// pipeline may have.
pub const USERNAME_TEMPLATE_NESTING_MAX: usize = 16;

/// What a username template may read: `.DisplayName` (the token's display name),
/// `.RoleName`, and the issue time for `unix_time` / `unix_time_millis` / `timestamp`.
#[derive(Debug, Clone, Copy)]
pub struct UsernameContext<'a> {
    pub display_name: &'a str,
    pub role_name: &'a str,
    pub unix_time_s: i64,
}

/// A parsed `username_template`: Vault's Go-template subset.
///
/// Text with `{{ … }}` actions. An action is a pipeline `a | f x | g`, in which
/// each stage's value is the last argument of the next. Operands: `.DisplayName`,
/// `.RoleName`, `"strings"` (Go escapes `\\ \" \n \t`) or raw `` `strings` ``,
/// integers, `( pipeline )`. Functions: `random N` (N alphanumerics, 1..=64),
/// `unix_time`, `unix_time_millis` (the issue second × 1000), `timestamp "layout"`
/// (UTC; a quoted Go layout of the tokens `2006 01 02 15 04 05`), `truncate N`,
/// `truncate_sha256 N`, `sha256`, `lowercase`, `uppercase`, `replace "old" "new"`,
/// and `printf "format" args…` with `%s` and `%%`. `{{- ` / ` -}}` trim spaces
/// and `{{/* … */}}` is a comment, as in Go.
///
/// Rendering replaces every character of the display and role names outside
/// `A-Z a-z 0-9 _ . -` with `-` before use, cuts the result to
/// [`USERNAME_BYTES_MAX`] bytes, and refuses an empty result or one with any other
/// character.
///
/// ```
/// use lessor_engine::text::template::{UsernameContext, UsernameTemplate};
///
/// let template = UsernameTemplate::default(); // DEFAULT_USERNAME_TEMPLATE
/// let ctx = UsernameContext { display_name: "token", role_name: "app-readonly", unix_time_s: 1_693_258_841 };
/// let name = template.render(&ctx, &mut |n| "jNFRlKsZZMxJEx60o66i".chars().cycle().take(n).collect())?;
/// assert_eq!(name, "v-token-app-read-jNFRlKsZZMxJEx60o66i-1693258841");
/// # Ok::<(), lessor_engine::text::template::TemplateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameTemplate {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Action(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    DisplayName,
    RoleName,
}

/// A pipeline with its stages folded in: `a | f x` is `f(x, a)`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Str(String),
    Int(i64),
    Field(Field),
    Random(usize),
    UnixTime,
    UnixTimeMillis,
    /// A checked layout.
    Timestamp(String),
    Truncate(usize, Box<Expr>),
    TruncateSha256(usize, Box<Expr>),
    Sha256(Box<Expr>),
    Lowercase(Box<Expr>),
    Uppercase(Box<Expr>),
    Replace(Box<[Expr; 3]>),
    /// The format's literal pieces (one more than the arguments) and the arguments.
    Printf(Vec<String>, Vec<Expr>),
}

impl Default for UsernameTemplate {
    /// [`DEFAULT_USERNAME_TEMPLATE`], parsed once: every issue of a connection
    /// without its own template asks for it (parsing showed in the issue profile).
    fn default() -> Self {
        static DEFAULT: std::sync::LazyLock<UsernameTemplate> = std::sync::LazyLock::new(|| {
            UsernameTemplate::parse(DEFAULT_USERNAME_TEMPLATE).expect("the default username template parses")
        });
        DEFAULT.clone()
    }
}

impl UsernameTemplate {
    /// Parses and checks a template: syntax, functions, fields, argument counts and
    /// types, and the constant arguments (`random`'s and `truncate`'s lengths,
    /// `printf`'s format, a literal `timestamp` layout).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.len() > USERNAME_TEMPLATE_BYTES_MAX {
            return Err(TemplateError::TemplateTooLong { bytes: text.len() });
        }
        let parts = Parser { src: text, bytes: text.as_bytes(), pos: 0 }.template()?;
        Ok(UsernameTemplate { source: text.to_owned(), parts })
    }

    /// The template's text, as parsed.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders a username; `rng(n)` returns `n` random alphanumerics.
    pub fn render(
        &self,
        ctx: &UsernameContext<'_>,
        rng: &mut dyn FnMut(usize) -> String,
    ) -> Result<String, TemplateError> {
        let mut eval = Eval { ctx, rng };
        let mut out = String::new();
        for part in &self.parts {
            let value = match part {
                Part::Text(text) => text.clone(),
                Part::Action(expr) => eval.expr(expr)?,
            };
            // Only the first USERNAME_BYTES_MAX bytes are kept; later actions still run.
            if out.len() <= USERNAME_BYTES_MAX {
                out.push_str(&value);
            }
        }
        out.truncate(floor_char_boundary(&out, USERNAME_BYTES_MAX));
        if let Some(character) = out.chars().find(|&c| !username_char_allowed(c)) {
            return Err(TemplateError::InvalidUsername { character });
        }
        if out.is_empty() {
            return Err(TemplateError::EmptyUsername);
        }
        Ok(out)
    }
}

/// The characters a generated username may hold.
pub fn username_char_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// A display or role name with every other character replaced by `-`, at most
/// [`USERNAME_VALUE_BYTES_MAX`] characters.
fn sanitize(name: &str) -> String {
    name.chars().take(USERNAME_VALUE_BYTES_MAX).map(|c| if username_char_allowed(c) { c } else { '-' }).collect()
}

struct Eval<'c, 'r> {
    ctx: &'c UsernameContext<'c>,
    rng: &'r mut dyn FnMut(usize) -> String,
}

impl Eval<'_, '_> {
    fn expr(&mut self, expr: &Expr) -> Result<String, TemplateError> {
        let value = match expr {
            Expr::Str(s) => s.clone(),
            Expr::Int(n) => n.to_string(),
            Expr::Field(Field::DisplayName) => sanitize(self.ctx.display_name),
            Expr::Field(Field::RoleName) => sanitize(self.ctx.role_name),
            Expr::Random(n) => (self.rng)(*n),
            Expr::UnixTime => self.ctx.unix_time_s.to_string(),
            Expr::UnixTimeMillis => self.ctx.unix_time_s.saturating_mul(1000).to_string(),
            // The layout was checked when parsed: only the length can fail here.
            Expr::Timestamp(layout) => {
                format_timestamp(layout, self.ctx.unix_time_s).map_err(|_| TemplateError::ValueTooLong)?
            }
            Expr::Truncate(n, s) => {
                let mut s = self.expr(s)?;
                s.truncate(floor_char_boundary(&s, *n));
                s
            }
            Expr::TruncateSha256(n, s) => {
                let s = self.expr(s)?;
                if s.len() <= *n {
                    s
                } else {
                    let cut = floor_char_boundary(&s, n - 8);
                    let hash = hex::encode(Sha256::digest(&s.as_bytes()[cut..]));
                    format!("{}{}", &s[..cut], &hash[..8])
                }
            }
            Expr::Sha256(s) => hex::encode(Sha256::digest(self.expr(s)?.as_bytes())),
            Expr::Lowercase(s) => self.expr(s)?.to_lowercase(),
            Expr::Uppercase(s) => self.expr(s)?.to_uppercase(),
            Expr::Replace(args) => {
                let [old, new, s] = &**args;
                let (old, new, s) = (self.expr(old)?, self.expr(new)?, self.expr(s)?);
                let matches = if old.is_empty() { s.chars().count() + 1 } else { s.matches(old.as_str()).count() };
                let len = (s.len() - matches * old.len()).saturating_add(matches.saturating_mul(new.len()));
                if len > USERNAME_VALUE_BYTES_MAX {
                    return Err(TemplateError::ValueTooLong);
                }
                s.replace(old.as_str(), &new)
            }
            Expr::Printf(pieces, args) => {
                let mut out = pieces[0].clone();
                for (arg, piece) in args.iter().zip(&pieces[1..]) {
                    out.push_str(&self.expr(arg)?);
                    out.push_str(piece);
                    if out.len() > USERNAME_VALUE_BYTES_MAX {
                        return Err(TemplateError::ValueTooLong);
                    }
                }
                out
            }
        };
        if value.len() > USERNAME_VALUE_BYTES_MAX {
            return Err(TemplateError::ValueTooLong);
        }
        Ok(value)
    }
}

/// Formats `unix_s` (UTC) with a Go layout restricted to its numeric tokens
/// `2006 01 02 15 04 05`, `T`, `Z` and punctuation; any other letter or digit is
/// refused rather than printed differently from Go.
fn format_timestamp(layout: &str, unix_s: i64) -> Result<String, String> {
    let t = crate::clock::Civil::from_unix_s(unix_s);
    let mut out = String::new();
    let mut rest = layout;
    while let Some(c) = rest.chars().next() {
        let token: Option<(usize, String)> = if rest.starts_with("2006") {
            Some((4, format!("{:04}", t.year)))
        } else {
            [("01", t.month), ("02", t.day), ("15", t.hour), ("04", t.minute), ("05", t.second)]
                .iter()
                .find(|(token, _)| rest.starts_with(token))
                .map(|&(_, v)| (2, format!("{v:02}")))
        };
        if let Some((len, text)) = token {
            out.push_str(&text);
            rest = &rest[len..];
        } else if c.is_alphanumeric() && c != 'T' && c != 'Z' {
            return Err(format!("{c:?} is not supported (use 2006 01 02 15 04 05)"));
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if out.len() > USERNAME_VALUE_BYTES_MAX {
            return Err("the timestamp is too long".to_owned());
        }
    }
    Ok(out)
}

/// An operand as written, before it is checked as an argument.
enum Operand {
    Expr(Expr),
    /// A bare identifier: a function name.
    Name(String),
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

fn go_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn clip(s: &str) -> String {
    s[..floor_char_boundary(s, VARIABLE_BYTES_MAX)].to_owned()
}

impl<'a> Parser<'a> {
    fn syntax(&self, offset: usize, detail: impl Into<String>) -> TemplateError {
        TemplateError::Syntax { offset, detail: detail.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at(&self, s: &str) -> bool {
        self.bytes[self.pos..].starts_with(s.as_bytes())
    }

    /// Skips spaces; were there any?
    fn skip_space(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(go_space) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// At the end of an action: `}}`, or ` -}}` after a space.
    fn at_close(&self) -> bool {
        self.at("}}") || (self.at("-}}") && self.pos > 0 && go_space(self.bytes[self.pos - 1]))
    }

    fn template(&mut self) -> Result<Vec<Part>, TemplateError> {
        let mut parts = Vec::new();
        let mut trim_next = false;
        loop {
            let rest = &self.src[self.pos..];
            let open = rest.find("{{");
            let mut text = &rest[..open.unwrap_or(rest.len())];
            if trim_next {
                text = text.trim_start_matches(|c: char| c.is_ascii() && go_space(c as u8));
            }
            let Some(open) = open else {
                push_text(&mut parts, text);
                return Ok(parts);
            };
            let open = self.pos + open;
            self.pos = open + 2;
            if self.peek() == Some(b'-') && self.bytes.get(self.pos + 1).copied().is_some_and(go_space) {
                text = text.trim_end_matches(|c: char| c.is_ascii() && go_space(c as u8));
                self.pos += 1;
            }
            push_text(&mut parts, text);
            self.skip_space();
            if self.at("/*") {
                let Some(end) = self.src[self.pos + 2..].find("*/") else {
                    return Err(self.syntax(self.pos, "unclosed comment"));
                };
                self.pos += 2 + end + 2;
            } else {
                let expr = self.pipeline(0)?;
                parts.push(Part::Action(expr));
            }
            trim_next = self.close_action(open)?;
        }
    }

    /// Consumes the action's `}}`; was it `-}}`?
    fn close_action(&mut self, open: usize) -> Result<bool, TemplateError> {
        self.skip_space();
        if self.at("}}") {
            self.pos += 2;
            Ok(false)
        } else if self.at_close() {
            self.pos += 3;
            Ok(true)
        } else if self.pos >= self.bytes.len() {
            Err(self.syntax(open, "unclosed action: no }}"))
        } else {
            Err(self.syntax(self.pos, "expected }}"))
        }
    }

    /// `command ( "|" command )*`, stopping before `)` or `}}`.
    fn pipeline(&mut self, depth: usize) -> Result<Expr, TemplateError> {
        let mut value: Option<Expr> = None;
        for _ in 0..USERNAME_TEMPLATE_NESTING_MAX {
            self.skip_space();
            let start = self.pos;
            let operands = self.command(depth)?;
            value = Some(self.build(start, operands, value)?);
            self.skip_space();
            if self.peek() != Some(b'|') {
                return Ok(value.expect("set above"));
            }
            self.pos += 1;
        }
        Err(self.syntax(self.pos, format!("more than {USERNAME_TEMPLATE_NESTING_MAX} pipeline stages")))
    }

    fn command(&mut self, depth: usize) -> Result<Vec<(usize, Operand)>, TemplateError> {
        let mut operands = Vec::new();
        loop {
            let spaced = self.skip_space();
            match self.peek() {
                None => return Err(self.syntax(self.pos, "unclosed action: no }}")),
                Some(b'|' | b')') => break,
                _ if self.at_close() => break,
                _ if !operands.is_empty() && !spaced && self.peek() != Some(b'(') => {
                    return Err(self.syntax(self.pos, "expected a space between arguments"));
                }
                _ => {
                    let start = self.pos;
                    operands.push((start, self.operand(depth)?));
                }
            }
        }
        if operands.is_empty() {
            return Err(self.syntax(self.pos, "missing value"));
        }
        Ok(operands)
    }

    fn operand(&mut self, depth: usize) -> Result<Operand, TemplateError> {
        let start = self.pos;
        match self.peek() {
            Some(b'.') => {
                self.pos += 1;
                match self.word() {
                    "DisplayName" => Ok(Operand::Expr(Expr::Field(Field::DisplayName))),
                    "RoleName" => Ok(Operand::Expr(Expr::Field(Field::RoleName))),
                    "" => Err(self.syntax(start, "`.` alone is not supported; use .DisplayName or .RoleName")),
                    name => Err(TemplateError::UnknownField { offset: start, name: clip(name) }),
                }
            }
            Some(b'"') => self.quoted().map(|s| Operand::Expr(Expr::Str(s))),
            Some(b'`') => {
                let Some(end) = self.src[start + 1..].find('`') else {
                    return Err(self.syntax(start, "unterminated raw string"));
                };
                self.pos = start + 1 + end + 1;
                Ok(Operand::Expr(Expr::Str(self.src[start + 1..start + 1 + end].to_owned())))
            }
            Some(b'(') => {
                if depth >= USERNAME_TEMPLATE_NESTING_MAX {
                    return Err(
                        self.syntax(start, format!("( … ) nested more than {USERNAME_TEMPLATE_NESTING_MAX} deep"))
                    );
                }
                self.pos += 1;
                let expr = self.pipeline(depth + 1)?;
                self.skip_space();
                if self.peek() != Some(b')') {
                    return Err(self.syntax(self.pos, "expected )"));
                }
                self.pos += 1;
                Ok(Operand::Expr(expr))
            }
            Some(b)
                if b.is_ascii_digit()
                    || ((b == b'-' || b == b'+') && self.bytes.get(start + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                self.pos += 1;
                let digits = self.word();
                let text = &self.src[start..start + 1 + digits.len()];
                text.parse::<i64>()
                    .map(|n| Operand::Expr(Expr::Int(n)))
                    .map_err(|_| self.syntax(start, format!("{:?} is not a decimal integer", clip(text))))
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => Ok(Operand::Name(self.word().to_owned())),
            Some(_) => {
                let c = self.src[start..].chars().next().unwrap_or('?');
                Err(self.syntax(start, format!("unexpected {c:?}")))
            }
            None => Err(self.syntax(start, "unclosed action: no }}")),
        }
    }

    /// `[A-Za-z0-9_]*` at `pos`.
    fn word(&mut self) -> &'a str {
        let from = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            self.pos += 1;
        }
        &self.src[from..self.pos]
    }

    /// A Go interpreted string literal at `pos`.
    fn quoted(&mut self) -> Result<String, TemplateError> {
        let (value, end) =
            quoted(self.src, self.pos, GO_ESCAPES).map_err(|e| self.syntax(e.offset(), e.to_string()))?;
        self.pos = end;
        Ok(value)
    }

    /// One command, given the previous stage's value (`piped`), as an expression.
    fn build(
        &self,
        offset: usize,
        operands: Vec<(usize, Operand)>,
        piped: Option<Expr>,
    ) -> Result<Expr, TemplateError> {
        let takes_arguments = operands.len() > 1;
        let mut operands = operands.into_iter();
        let Some((_, first)) = operands.next() else {
            return Err(self.syntax(offset, "missing value"));
        };
        let name = match first {
            Operand::Name(name) => name,
            Operand::Expr(expr) => {
                if takes_arguments {
                    return Err(self.syntax(offset, "only a function takes arguments"));
                }
                if piped.is_some() {
                    return Err(self.syntax(offset, "after | there must be a function"));
                }
                return Ok(expr);
            }
        };
        let mut args = Vec::with_capacity(operands.len() + 1);
        for (at, operand) in operands {
            args.push(match operand {
                Operand::Expr(expr) => expr,
                // A function name as an argument is a call without arguments, as in Go.
                Operand::Name(name) => self.call(at, &name, Vec::new())?,
            });
        }
        args.extend(piped);
        self.call(offset, &name, args)
    }

    fn call(&self, offset: usize, name: &str, args: Vec<Expr>) -> Result<Expr, TemplateError> {
        let function = FUNCTIONS
            .iter()
            .copied()
            .find(|f| *f == name)
            .ok_or_else(|| TemplateError::UnknownFunction { offset, name: clip(name) })?;
        let found = args.len();
        let arity = |expected: usize| {
            if found == expected { Ok(()) } else { Err(TemplateError::Arity { offset, function, expected, found }) }
        };
        let length = |arg: &Expr, min: i64, max: i64| match *arg {
            Expr::Int(n) if (min..=max).contains(&n) => Ok(n as usize),
            Expr::Int(n) => Err(self.syntax(offset, format!("{function}: {n} is not in {min}..={max}"))),
            _ => Err(self.syntax(offset, format!("{function}: the length must be a number"))),
        };
        let text = |arg: Expr| match arg {
            Expr::Int(_) => Err(self.syntax(offset, format!("{function}: expected a string, not a number"))),
            arg => Ok(Box::new(arg)),
        };
        let mut args = args.into_iter();
        let mut next = || args.next().expect("arity checked");
        Ok(match function {
            "random" => {
                arity(1)?;
                Expr::Random(length(&next(), 1, RANDOM_CHARS_MAX as i64)?)
            }
            "unix_time" => {
                arity(0)?;
                Expr::UnixTime
            }
            "unix_time_millis" => {
                arity(0)?;
                Expr::UnixTimeMillis
            }
            "timestamp" => {
                arity(1)?;
                let Expr::Str(layout) = next() else {
                    return Err(self.syntax(offset, "timestamp: the layout must be a quoted string"));
                };
                format_timestamp(&layout, 0).map_err(|e| self.syntax(offset, format!("timestamp: {e}")))?;
                Expr::Timestamp(layout)
            }
            "truncate" => {
                arity(2)?;
                let n = length(&next(), 1, i64::MAX)?;
                Expr::Truncate(n, text(next())?)
            }
            "truncate_sha256" => {
                arity(2)?;
                let n = length(&next(), 9, i64::MAX)?;
                Expr::TruncateSha256(n, text(next())?)
            }
            "sha256" => {
                arity(1)?;
                Expr::Sha256(text(next())?)
            }
            "lowercase" => {
                arity(1)?;
                Expr::Lowercase(text(next())?)
            }
            "uppercase" => {
                arity(1)?;
                Expr::Uppercase(text(next())?)
            }
            "replace" => {
                arity(3)?;
                Expr::Replace(Box::new([*text(next())?, *text(next())?, *text(next())?]))
            }
            _ => {
                // printf
                let Some(Expr::Str(format)) = args.next() else {
                    return Err(self.syntax(offset, "printf: the format must be a quoted string"));
                };
                let pieces = printf_pieces(&format).map_err(|e| self.syntax(offset, format!("printf: {e}")))?;
                if pieces.len() != found {
                    return Err(TemplateError::Arity { offset, function, expected: pieces.len(), found });
                }
                let args = args.map(|a| text(a).map(|a| *a)).collect::<Result<Vec<_>, _>>()?;
                Expr::Printf(pieces, args)
            }
        })
    }
}

const FUNCTIONS: [&str; 11] = [
    "random",
    "unix_time",
    "unix_time_millis",
    "timestamp",
    "truncate",
    "truncate_sha256",
    "sha256",
    "lowercase",
    "uppercase",
    "replace",
    "printf",
];

fn push_text(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Text(text.to_owned()));
    }
}

/// A `printf` format split at its `%s`s (`%%` is a `%`).
fn printf_pieces(format: &str) -> Result<Vec<String>, String> {
    let mut pieces = vec![String::new()];
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            pieces.last_mut().expect("never empty").push(c);
            continue;
        }
        match chars.next() {
            Some('s') => pieces.push(String::new()),
            Some('%') => pieces.last_mut().expect("never empty").push('%'),
            Some(other) => return Err(format!("%{other} is not supported; use %s")),
            None => return Err("the format ends with %".to_owned()),
        }
    }
    Ok(pieces)
}

impl fmt::Display for UsernameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// `fill` as a `{{random N}}` source: what `render` wants from a byte source.
pub fn random_source(fill: &mut dyn FnMut(&mut [u8])) -> impl FnMut(usize) -> String + '_ {
    move |n| random_alnum(n, fill)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(display_name: &'a str, role_name: &'a str) -> UsernameContext<'a> {
        UsernameContext { display_name, role_name, unix_time_s: 1_693_258_841 }
    }

    fn render(template: &str, ctx: &UsernameContext<'_>) -> Result<String, TemplateError> {
        UsernameTemplate::parse(template)?
            .render(ctx, &mut |n| "jNFRlKsZZMxJEx60o66i".chars().cycle().take(n).collect())
    }

    #[test]
    fn default_username_template() {
        let name = render(DEFAULT_USERNAME_TEMPLATE, &ctx("token", "app-readonly")).unwrap();
        assert_eq!(name, "v-token-app-read-jNFRlKsZZMxJEx60o66i-1693258841");
        // Display names are sanitized before they are cut.
        let name = render(DEFAULT_USERNAME_TEMPLATE, &ctx("tok\"en';x", "r ö")).unwrap();
        assert_eq!(name, "v-tok-en---r---jNFRlKsZZMxJEx60o66i-1693258841");
        let long = "x".repeat(100);
        assert_eq!(render(DEFAULT_USERNAME_TEMPLATE, &ctx(&long, &long)).unwrap().len(), 51);
        assert_eq!(UsernameTemplate::default().as_str(), DEFAULT_USERNAME_TEMPLATE);
    }

    #[test]
    fn username_functions() {
        let c = ctx("Token-App", "Role");
        let cases = [
            ("{{.DisplayName | lowercase}}", "token-app"),
            ("{{.DisplayName | uppercase | truncate 3}}", "TOK"),
            (r#"{{.DisplayName | replace "-" "_"}}"#, "Token_App"),
            (r#"{{replace "o" "0" .RoleName}}"#, "R0le"),
            ("pre_{{.RoleName}}_{{unix_time}}", "pre_Role_1693258841"),
            ("{{unix_time_millis}}", "1693258841000"),
            (r#"{{timestamp "20060102T150405Z"}}"#, "20230828T214041Z"),
            (r#"{{timestamp "2006-01-02"}}"#, "2023-08-28"),
            ("{{random 5}}", "jNFRl"),
            (r#"{{printf "%s.%s" .RoleName (.DisplayName | truncate 2)}}"#, "Role.To"),
            (r#"{{printf "%s%%" .RoleName | replace "%" "_"}}"#, "Role_"),
            ("{{.RoleName | sha256 | truncate 8}}", "14736a2e"),
            ("{{.RoleName | truncate_sha256 9}}", "Role"),
            (r#"{{"Token-App-Long" | truncate_sha256 9}}"#, "Tcec38001"),
            ("  {{- .RoleName -}}  x", "Rolex"),
            ("a{{/* a comment */}}b", "ab"),
            ("{{`raw`}}_{{ 42 }}", "raw_42"),
            (r#"{{printf "%s" unix_time}}"#, "1693258841"),
        ];
        for (template, expected) in cases {
            let got = render(template, &c).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(got, expected, "{template}");
        }
    }

    #[test]
    fn username_output_rules() {
        let c = ctx("d", "r");
        assert_eq!(render(&"a".repeat(100), &c).unwrap().len(), USERNAME_BYTES_MAX);
        assert_eq!(render("{{.RoleName}} x", &c), Err(TemplateError::InvalidUsername { character: ' ' }));
        assert_eq!(
            render(r#"{{printf "%s'" .RoleName}}"#, &c),
            Err(TemplateError::InvalidUsername { character: '\'' })
        );
        assert_eq!(render(r#"{{ "" }}"#, &c), Err(TemplateError::EmptyUsername));
        assert_eq!(render(r#"{{.RoleName | replace "r" ""}}"#, &c), Err(TemplateError::EmptyUsername));
        // Characters past the cut do not count.
        assert_eq!(render(&format!("{} ", "a".repeat(63)), &c).unwrap(), "a".repeat(63));
    }

    #[test]
    fn username_parse_errors() {
        let err = |t: &str| UsernameTemplate::parse(t).unwrap_err();
        assert!(matches!(err("{{.Nope}}"), TemplateError::UnknownField { offset: 2, .. }));
        assert!(matches!(err("{{ nope 3 }}"), TemplateError::UnknownFunction { offset: 3, .. }));
        assert!(matches!(err("{{random}}"), TemplateError::Arity { function: "random", expected: 1, found: 0, .. }));
        assert!(matches!(err("{{.RoleName | truncate}}"), TemplateError::Arity { found: 1, expected: 2, .. }));
        assert!(matches!(err(r#"{{printf "%s-%s" .RoleName}}"#), TemplateError::Arity { .. }));
        for bad in [
            "{{.RoleName",
            "{{ }}",
            "{{random 0}}",
            "{{random 65}}",
            "{{truncate 0 .RoleName}}",
            "{{truncate_sha256 8 .RoleName}}",
            r#"{{truncate "8" .RoleName}}"#,
            "{{lowercase 3}}",
            r#"{{printf "%d" 3}}"#,
            r#"{{printf .RoleName}}"#,
            "{{.RoleName .DisplayName}}",
            "{{.RoleName | .DisplayName}}",
            "{{ (.RoleName }}",
            r#"{{ "abc }}"#,
            r#"{{ "a\x" }}"#,
            r#"{{timestamp "Jan 2"}}"#,
            "{{timestamp .RoleName}}",
            "{{ 99999999999999999999 }}",
            "{{/* x }}",
            "{{ . }}",
            "{{ .RoleName@ }}",
        ] {
            assert!(
                matches!(err(bad), TemplateError::Syntax { .. } | TemplateError::Arity { .. }),
                "{bad}: {:?}",
                err(bad)
            );
        }
        let deep = format!("{{{{{}.RoleName{}}}}}", "(".repeat(17), ")".repeat(17));
        assert!(matches!(err(&deep), TemplateError::Syntax { .. }));
        assert!(UsernameTemplate::parse(&format!("{{{{{}.RoleName{}}}}}", "(".repeat(16), ")".repeat(16))).is_ok());
        let long = "a".repeat(USERNAME_TEMPLATE_BYTES_MAX + 1);
        assert_eq!(err(&long), TemplateError::TemplateTooLong { bytes: long.len() });
    }

    #[test]
    fn username_values_are_bounded() {
        let c = ctx("d", "r");
        let blowup = format!("{{{{ .RoleName {} }}}}", r#"| replace "" "rrrrrrrr" "#.repeat(6));
        assert_eq!(render(&blowup, &c), Err(TemplateError::ValueTooLong));
    }
}
