//! ACL policies: Vault's `path "…" { capabilities = [...] }` language, and the
//! [`Acl`] compiled from a token's policies that answers "what may this token do
//! on this path?".
//!
//! ```
//! use lessor_engine::auth::policy::{Acl, Capabilities, parse_policy};
//!
//! let policy = parse_policy("app", r#"path "database/creds/app-readonly" { capabilities = ["read"] }"#)?;
//! let acl = Acl::new([&policy]);
//! assert!(acl.allows("database/creds/app-readonly", Capabilities::READ));
//! assert!(!acl.allows("database/creds/other", Capabilities::READ)); // deny by default
//! # Ok::<(), lessor_engine::auth::policy::PolicyError>(())
//! ```
//!
//! # Semantics
//! Vault's, so that policies users already have mean the same thing here:
//! deny by default; a pattern ending in `*` is a prefix match (`secret/*` matches
//! `secret/` and `secret/a/b`, `secret*` matches `secrets`); a `+` segment matches
//! exactly one non-empty segment. When several patterns match a path only the most
//! specific one counts: an exact pattern first, then Vault's five priority rules
//! (later first wildcard, no trailing `*`, fewer `+`, longer, lexicographically
//! larger). The same pattern in several policies unions its capabilities, and a
//! `deny` in that union denies everything on the path.
//!
//! Where lessor is stricter than Vault, it is because Vault's leniency hides a
//! mistake: a `*` in the middle of a pattern (Vault matches it literally), a `+`
//! inside a segment, and every path-block attribute except `capabilities` are
//! errors, and a `+` never matches an empty segment (Vault lets `secret/+/x`
//! match `secret//x`). An `allowed_parameters` or `min_wrapping_ttl` that lessor
//! accepted but did not enforce would grant more than its author wrote.
//!
//! The HCL is parsed by hcl-rs, behind a screen that refuses expressions
//! (operators, parentheses, templates, heredocs) and deep nesting first: hcl-rs
//! backtracks exponentially over operators nested in object constructors, and a
//! policy never needs an expression. The JSON form is parsed by serde_json into a
//! value that keeps duplicate keys, so two rules for one pattern union as in HCL
//! instead of the last silently replacing (say) a `deny`.
//!
//! # Design: why the [`Acl`] looks the way it does
//! Every request is authorized, and a token's policies hold thousands of rules,
//! so a check must cost a few hash lookups, never a scan of the rules. (Vault scans
//! every `+` pattern on every request.) Three observations make that possible:
//!
//! * **Exact patterns always win**, so they live in one hash map keyed by the whole
//!   path: most real checks (`database/creds/<role>`) end with one lookup.
//! * **Priority does not depend on the path.** Vault's rules compare two patterns
//!   by their own shape only, so they are a total order on distinct patterns. The
//!   ACL sorts the wildcard patterns once and gives each a rank; a check keeps the
//!   highest rank that matches and compares integers only. Union and deny-wins are
//!   folded per pattern at compile time too, so a check never merges anything, and
//!   the order in which policies or rules were given cannot matter.
//! * **A pattern is a sequence of segments** (literal, or `+`) with, for a glob, a
//!   trailing partial segment before the `*`. A trie keyed by whole segments, with
//!   one extra edge per node for `+`, lets a check walk the path's segments once,
//!   branching only where a `+` edge exists: its cost grows with the path's depth,
//!   not with the number of policies. Globs hang off the node of their last full
//!   segment, keyed by the partial segment and probed longest first. That probe
//!   may stop at its first hit because, at one node, a longer partial always
//!   outranks a shorter one (same prefix shape, same `+` count, longer).
//!
//! An [`Acl`] is immutable: policies change rarely, so the caller builds one per
//! set of policies and rebuilds it when a policy is written.
//!
//! Request paths are matched byte for byte as given: the caller passes them
//! canonical, without a leading `/` (a pattern's leading `/` is stripped when it is
//! parsed, as Vault does). Vault's list-operation fallbacks (retrying without a
//! trailing `/`) are the request layer's business, not the ACL's.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use hcl::{BlockLabel, Expression, Structure};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The policy every root token has: every capability on every path. It has no
/// rules; use [`Acl::root`]. It can be neither written nor deleted.
pub const ROOT_POLICY: &str = "root";
/// The policy attached to tokens by default. It can be overwritten, not deleted.
pub const DEFAULT_POLICY: &str = "default";
/// The built-in `default` policy: the part of Vault's default policy that applies
/// to lessor — a token may look up, renew and revoke itself, ask for its own
/// capabilities, and renew and look up leases by id.
pub const DEFAULT_POLICY_TEXT: &str = r#"# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties via lease_id in the request body
path "sys/leases/lookup" {
    capabilities = ["update"]
}
"#;

/// Largest policy text [`parse_policy`] accepts (64 KiB).
pub const POLICY_TEXT_BYTES_MAX: usize = 64 * 1024;
/// Most path rules one policy may hold.
pub const POLICY_PATH_RULES_MAX: usize = 1_000;
/// Most `/`-separated segments in one path pattern. It bounds the depth of the
/// compiled trie, and so the recursion of a check.
pub const POLICY_PATTERN_SEGMENTS_MAX: usize = 64;
/// Longest policy name.
pub const POLICY_NAME_BYTES_MAX: usize = 128;
/// How much of the input an error message may quote.
const ERROR_INPUT_CHARS_MAX: usize = 100;
/// Deepest nesting of `{` and `[` the HCL screen lets through (a policy needs 2).
const HCL_NESTING_LEVELS_MAX: usize = 16;

/// The capability names, in Vault's order, as the error messages list them.
const VALID_CAPABILITIES: &str = "create, read, update, delete, list, sudo, deny";

/// A set of capabilities (a bitset).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    /// The empty set.
    pub const NONE: Capabilities = Capabilities(0);
    pub const CREATE: Capabilities = Capabilities(1 << 0);
    pub const READ: Capabilities = Capabilities(1 << 1);
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    pub const DELETE: Capabilities = Capabilities(1 << 3);
    pub const LIST: Capabilities = Capabilities(1 << 4);
    pub const SUDO: Capabilities = Capabilities(1 << 5);
    pub const DENY: Capabilities = Capabilities(1 << 6);
    /// Every capability that grants something (all but `deny`): what root has.
    pub const ALL_GRANTS: Capabilities = Capabilities(0b0011_1111);

    /// Each capability with its name, in Vault's order.
    const NAMED: [(Capabilities, &'static str); 7] = [
        (Capabilities::CREATE, "create"),
        (Capabilities::READ, "read"),
        (Capabilities::UPDATE, "update"),
        (Capabilities::DELETE, "delete"),
        (Capabilities::LIST, "list"),
        (Capabilities::SUDO, "sudo"),
        (Capabilities::DENY, "deny"),
    ];

    /// The capability called `name` (`"read"`, …; case-sensitive, as in Vault).
    pub fn from_name(name: &str) -> Option<Capabilities> {
        Self::NAMED.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    /// The raw bits, for encoding.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set with these bits, or `None` if a bit names no capability.
    #[cfg(any(test, feature = "testing"))]
    pub const fn from_bits(bits: u8) -> Option<Capabilities> {
        if bits & !(Self::ALL_GRANTS.0 | Self::DENY.0) == 0 { Some(Capabilities(bits)) } else { None }
    }

    /// Whether every capability in `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the capabilities in the set, in Vault's order
    /// (`create read update delete list sudo deny`).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMED.into_iter().filter(move |(c, _)| self.contains(*c)).map(|(_, n)| n)
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Capabilities) {
        *self = self.union(rhs);
    }
}

impl FromIterator<Capabilities> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capabilities>>(iter: I) -> Capabilities {
        iter.into_iter().fold(Capabilities::NONE, Capabilities::union)
    }
}

/// `[read, update]`
impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        f.write_str("]")
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Capabilities{self}")
    }
}

/// One `path "<pattern>" { capabilities = [...] }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The validated pattern, without a leading `/`.
    pub pattern: String,
    pub capabilities: Capabilities,
}

/// A named set of path rules, in the order they were written (order carries no
/// meaning: see [`Acl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<PathRule>,
}

/// Why a policy or a policy name was refused. Messages quote at most about a
/// hundred characters of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("policy text is {bytes} bytes, over the limit of {POLICY_TEXT_BYTES_MAX}; split it into several policies")]
    TextTooLarge { bytes: usize },
    #[error("policy has more than {POLICY_PATH_RULES_MAX} path rules; split it into several policies")]
    TooManyRules,
    #[error("policy is not valid HCL: {detail}")]
    Hcl { detail: String },
    #[error("policy is not valid JSON: {detail}")]
    Json { detail: String },
    #[error(
        "unexpected {found} at the top level of the policy; a policy holds only \
         `path \"<pattern>\" {{ capabilities = [...] }}` blocks"
    )]
    UnknownTopLevel { found: String },
    #[error(
        "a path block needs exactly one quoted pattern, as in `path \"database/creds/app\" {{ ... }}`; found {labels}"
    )]
    PathLabels { labels: usize },
    #[error("a path pattern is empty; write the path it grants, e.g. \"database/creds/app\"")]
    EmptyPattern,
    #[error("path {pattern}: `*` is only allowed at the end of a path pattern; use `+` for one segment")]
    MisplacedGlob { pattern: String },
    #[error("path {pattern}: `+` must be a whole path segment, as in \"secret/+/config\"; for `+*` write `+/*`")]
    MisplacedPlus { pattern: String },
    #[error("path {pattern}: a path pattern cannot contain control characters")]
    ControlCharacter { pattern: String },
    #[error("path {pattern}: {segments} segments, over the limit of {POLICY_PATTERN_SEGMENTS_MAX}")]
    PatternTooDeep { pattern: String, segments: usize },
    #[error("path {pattern}: unknown capability {capability}; valid capabilities are: {VALID_CAPABILITIES}")]
    UnknownCapability { pattern: String, capability: String },
    #[error(
        "path {pattern}: capabilities is empty; list at least one of: {VALID_CAPABILITIES} \
         (use [\"deny\"] to forbid the path)"
    )]
    EmptyCapabilities { pattern: String },
    #[error("path {pattern}: missing `capabilities = [...]`; list at least one of: {VALID_CAPABILITIES}")]
    MissingCapabilities { pattern: String },
    #[error("path {pattern}: capabilities must be a list of quoted names, as in [\"read\", \"list\"]")]
    CapabilitiesNotList { pattern: String },
    #[error("path {pattern}: capabilities is given twice in one block; merge the two lists")]
    DuplicateCapabilities { pattern: String },
    #[error(
        "path {pattern}: {attribute} is not supported: lessor supports only `capabilities` in a path block, and \
         silently ignoring a restriction would widen access; remove it"
    )]
    UnsupportedAttribute { pattern: String, attribute: String },
    #[error("policy name is empty")]
    EmptyName,
    #[error("policy name is {bytes} bytes, over the limit of {POLICY_NAME_BYTES_MAX}")]
    NameTooLong { bytes: usize },
    #[error("policy name {name} contains {character:?}; use only letters, digits, `_`, `-` and `.`")]
    InvalidNameCharacter { name: String, character: char },
    // The two refusals of `check_policy_writable` / `check_policy_deletable`,
    // which only tests call: the sys/policy handler words its own (wire) errors.
    #[cfg(any(test, feature = "testing"))]
    #[error("the \"root\" policy cannot be {action}: it is built in and grants every capability on every path")]
    RootPolicy { action: &'static str },
    #[error("the \"default\" policy cannot be deleted: it is built in; write it to change what it grants")]
    #[cfg(any(test, feature = "testing"))]
    DeleteDefaultPolicy,
}

/// `s` cut to [`ERROR_INPUT_CHARS_MAX`] characters, marked with `…` if cut.
fn clip(s: &str) -> String {
    match s.char_indices().nth(ERROR_INPUT_CHARS_MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// `s` clipped, quoted and escaped, for an error message.
fn quoted(s: &str) -> String {
    format!("{:?}", clip(s))
}

/// Parses a policy in Vault's HCL subset, or in the JSON form Vault accepts when
/// the text (trimmed) starts with `{`. The name is recorded as given: check it with
/// [`validate_policy_name`] / [`normalize_policy_name`] first.
///
/// ```hcl
/// # comments: #, // and /* */
/// path "database/creds/app-readonly" {
///   capabilities = ["read"]
/// }
/// ```
/// ```json
/// {"path": {"database/creds/app-readonly": {"capabilities": ["read"]}}}
/// ```
pub fn parse_policy(name: &str, text: &str) -> Result<Policy, PolicyError> {
    if text.len() > POLICY_TEXT_BYTES_MAX {
        return Err(PolicyError::TextTooLarge { bytes: text.len() });
    }
    let mut rules = Vec::new();
    if text.trim_start().starts_with('{') {
        parse_json(text, &mut rules)?;
    } else {
        parse_hcl(text, &mut rules)?;
    }
    Ok(Policy { name: name.to_owned(), rules })
}

/// Checks a raw pattern and returns it without its leading `/`.
fn validate_pattern(raw: &str) -> Result<String, PolicyError> {
    let pattern = raw.strip_prefix('/').unwrap_or(raw);
    if pattern.is_empty() {
        return Err(PolicyError::EmptyPattern);
    }
    if pattern.chars().any(char::is_control) {
        return Err(PolicyError::ControlCharacter { pattern: quoted(pattern) });
    }
    let segments = pattern.split('/').count();
    if segments > POLICY_PATTERN_SEGMENTS_MAX {
        return Err(PolicyError::PatternTooDeep { pattern: quoted(pattern), segments });
    }
    let body = pattern.strip_suffix('*');
    let glob = body.is_some();
    let body = body.unwrap_or(pattern);
    if body.contains('*') {
        return Err(PolicyError::MisplacedGlob { pattern: quoted(pattern) });
    }
    let mut segments = body.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment.contains('+') && (segment != "+" || (glob && last)) {
            return Err(PolicyError::MisplacedPlus { pattern: quoted(pattern) });
        }
    }
    Ok(pattern.to_owned())
}

fn parse_capability(pattern: &str, name: &str) -> Result<Capabilities, PolicyError> {
    Capabilities::from_name(name)
        .ok_or_else(|| PolicyError::UnknownCapability { pattern: quoted(pattern), capability: quoted(name) })
}

fn push_rule(rules: &mut Vec<PathRule>, pattern: String, capabilities: Capabilities) -> Result<(), PolicyError> {
    if rules.len() >= POLICY_PATH_RULES_MAX {
        return Err(PolicyError::TooManyRules);
    }
    if capabilities.is_empty() {
        return Err(PolicyError::EmptyCapabilities { pattern: quoted(&pattern) });
    }
    rules.push(PathRule { pattern, capabilities });
    Ok(())
}

/// Refuses, before the HCL parser sees it, anything outside the language of
/// policies: operators, parentheses, heredocs, `${}` / `%{}` templates, and deep
/// nesting. hcl-rs backtracks exponentially over binary operations nested in
/// object constructors (a 400-byte input took a minute); a policy never needs an
/// expression, so refusing them keeps parsing linear. Outside quotes and comments
/// only identifiers, numbers, `=`, `,`, `:`, `.` and brackets remain.
fn screen_hcl(text: &str) -> Result<(), PolicyError> {
    enum State {
        Code,
        Quoted,
        LineComment,
        BlockComment,
    }
    let refuse = |offset: usize, what: String| {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Err(PolicyError::Hcl { detail: format!("line {line}, column {column}: {what}") })
    };
    let mut state = State::Code;
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        match state {
            State::Code => match c {
                '"' => state = State::Quoted,
                '#' => state = State::LineComment,
                '/' if next == Some('/') => state = State::LineComment,
                '/' if next == Some('*') => {
                    chars.next();
                    state = State::BlockComment;
                }
                '{' | '[' => {
                    depth += 1;
                    if depth > HCL_NESTING_LEVELS_MAX {
                        return refuse(offset, format!("nested more than {HCL_NESTING_LEVELS_MAX} levels deep"));
                    }
                }
                '}' | ']' => depth = depth.saturating_sub(1),
                c if c.is_ascii_alphanumeric()
                    || matches!(c, '_' | '=' | ',' | ':' | '.' | ' ' | '\t' | '\r' | '\n') => {}
                c => {
                    return refuse(
                        offset,
                        format!(
                            "{c:?} outside quotes; a policy holds only `path \"<pattern>\" {{ capabilities = [...] }}` \
                             blocks, not expressions"
                        ),
                    );
                }
            },
            State::Quoted => match c {
                '"' | '\n' => state = State::Code,
                // An escape; a newline still ends the string, as for the parser.
                '\\' if next != Some('\n') => {
                    chars.next();
                }
                '$' | '%' if next == Some('{') => {
                    return refuse(offset, format!("`{c}{{` templates are not supported in a policy"));
                }
                _ => {}
            },
            State::LineComment => {
                if c == '\n' {
                    state = State::Code;
                }
            }
            State::BlockComment => {
                if c == '*' && next == Some('/') {
                    chars.next();
                    state = State::Code;
                }
            }
        }
    }
    Ok(())
}

fn parse_hcl(text: &str, rules: &mut Vec<PathRule>) -> Result<(), PolicyError> {
    screen_hcl(text)?;
    let body = hcl::parse(text).map_err(|e| PolicyError::Hcl {
        detail: match e {
            // Not the error's Display: that quotes the whole offending line.
            hcl::Error::Parse(e) => {
                format!("line {}, column {}: {}", e.location().line(), e.location().column(), clip(e.message()))
            }
            other => clip(&other.to_string()),
        },
    })?;
    for structure in body.into_inner() {
        match structure {
            Structure::Block(block) if block.identifier.as_str() == "path" => {
                let [label] = block.labels.as_slice() else {
                    return Err(PolicyError::PathLabels { labels: block.labels.len() });
                };
                let pattern = validate_pattern(match label {
                    BlockLabel::String(s) => s.as_str(),
                    BlockLabel::Identifier(i) => i.as_str(),
                })?;
                let capabilities = hcl_capabilities(&pattern, block.body)?;
                push_rule(rules, pattern, capabilities)?;
            }
            Structure::Block(block) => {
                return Err(PolicyError::UnknownTopLevel { found: format!("block {}", quoted(&block.identifier)) });
            }
            // Vault accepts (and ignores) a top-level `name`; it restricts nothing.
            Structure::Attribute(attr) if attr.key.as_str() == "name" && matches!(attr.expr, Expression::String(_)) => {
            }
            Structure::Attribute(attr) => {
                return Err(PolicyError::UnknownTopLevel { found: format!("attribute {}", quoted(&attr.key)) });
            }
        }
    }
    Ok(())
}

fn hcl_capabilities(pattern: &str, body: hcl::Body) -> Result<Capabilities, PolicyError> {
    let mut capabilities = None;
    for structure in body.into_inner() {
        let attr = match structure {
            Structure::Attribute(attr) if attr.key.as_str() == "capabilities" => attr,
            Structure::Attribute(attr) => {
                return Err(PolicyError::UnsupportedAttribute {
                    pattern: quoted(pattern),
                    attribute: quoted(&attr.key),
                });
            }
            Structure::Block(block) => {
                return Err(PolicyError::UnsupportedAttribute {
                    pattern: quoted(pattern),
                    attribute: quoted(&block.identifier),
                });
            }
        };
        if capabilities.is_some() {
            return Err(PolicyError::DuplicateCapabilities { pattern: quoted(pattern) });
        }
        let Expression::Array(items) = attr.expr else {
            return Err(PolicyError::CapabilitiesNotList { pattern: quoted(pattern) });
        };
        let mut set = Capabilities::NONE;
        for item in items {
            let Expression::String(name) = item else {
                return Err(PolicyError::CapabilitiesNotList { pattern: quoted(pattern) });
            };
            set |= parse_capability(pattern, &name)?;
        }
        capabilities = Some(set);
    }
    capabilities.ok_or_else(|| PolicyError::MissingCapabilities { pattern: quoted(pattern) })
}

/// A JSON value whose objects keep every key, duplicates included: a map type
/// would keep only the last of two `"secret/x"` rules, silently dropping a `deny`.
enum Json {
    Scalar,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

fn json_error(detail: impl Into<String>) -> PolicyError {
    PolicyError::Json { detail: detail.into() }
}

fn parse_json(text: &str, rules: &mut Vec<PathRule>) -> Result<(), PolicyError> {
    // serde_json's errors name a line and column, not the input; its nesting
    // limit keeps hostile input off the stack.
    let value: Json = serde_json::from_str(text).map_err(|e| json_error(clip(&e.to_string())))?;
    let Json::Object(top) = value else {
        return Err(json_error(
            r#"the top level must be an object, as in {"path": {"secret/foo": {"capabilities": ["read"]}}}"#,
        ));
    };
    for (key, value) in top {
        match (key.as_str(), value) {
            ("path", Json::Object(entries)) => json_paths(entries, rules)?,
            // HCL's JSON form may also give the blocks as a list of objects.
            ("path", Json::Array(items)) => {
                for item in items {
                    let Json::Object(entries) = item else {
                        return Err(json_error("`path` must map each pattern to its rule"));
                    };
                    json_paths(entries, rules)?;
                }
            }
            ("path", _) => return Err(json_error("`path` must map each pattern to its rule")),
            ("name", Json::String(_)) => {}
            (other, _) => return Err(PolicyError::UnknownTopLevel { found: format!("key {}", quoted(other)) }),
        }
    }
    Ok(())
}

fn json_paths(entries: Vec<(String, Json)>, rules: &mut Vec<PathRule>) -> Result<(), PolicyError> {
    for (raw, rule) in entries {
        let pattern = validate_pattern(&raw)?;
        let bodies = match rule {
            Json::Object(fields) => vec![fields],
            Json::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Json::Object(fields) => Ok(fields),
                    _ => Err(json_rule_error(&pattern)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(json_rule_error(&pattern)),
        };
        for fields in bodies {
            let capabilities = json_capabilities(&pattern, fields)?;
            push_rule(rules, pattern.clone(), capabilities)?;
        }
    }
    Ok(())
}

fn json_rule_error(pattern: &str) -> PolicyError {
    json_error(format!(r#"path {}: the rule must be an object, as in {{"capabilities": ["read"]}}"#, quoted(pattern)))
}

fn json_capabilities(pattern: &str, fields: Vec<(String, Json)>) -> Result<Capabilities, PolicyError> {
    let mut capabilities = None;
    for (key, value) in fields {
        if key != "capabilities" {
            return Err(PolicyError::UnsupportedAttribute { pattern: quoted(pattern), attribute: quoted(&key) });
        }
        if capabilities.is_some() {
            return Err(PolicyError::DuplicateCapabilities { pattern: quoted(pattern) });
        }
        let Json::Array(items) = value else {
            return Err(PolicyError::CapabilitiesNotList { pattern: quoted(pattern) });
        };
        let mut set = Capabilities::NONE;
        for item in items {
            let Json::String(name) = item else {
                return Err(PolicyError::CapabilitiesNotList { pattern: quoted(pattern) });
            };
            set |= parse_capability(pattern, &name)?;
        }
        capabilities = Some(set);
    }
    capabilities.ok_or_else(|| PolicyError::MissingCapabilities { pattern: quoted(pattern) })
}

/// Checks a policy name: non-empty, at most [`POLICY_NAME_BYTES_MAX`] bytes, only
/// `[A-Za-z0-9_.-]`. Names are case-insensitive: store [`normalize_policy_name`].
pub fn validate_policy_name(name: &str) -> Result<(), PolicyError> {
    if name.is_empty() {
        return Err(PolicyError::EmptyName);
    }
    if name.len() > POLICY_NAME_BYTES_MAX {
        return Err(PolicyError::NameTooLong { bytes: name.len() });
    }
    if let Some(character) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(PolicyError::InvalidNameCharacter { name: quoted(name), character });
    }
    Ok(())
}

/// The stored form of a policy name: lowercased, as Vault does (`App-Read` and
/// `app-read` are one policy). Validate it with [`validate_policy_name`].
pub fn normalize_policy_name(name: &str) -> String {
    name.to_ascii_lowercase()
}

// Not called by the sys/policy handler, which checks the same names itself and
// words its own (wire) errors; kept, and tested, as the statement of the rule.
#[cfg(any(test, feature = "testing"))]
/// The normalized name, if it is valid and a policy of that name may be written:
/// not `root`.
pub fn check_policy_writable(name: &str) -> Result<String, PolicyError> {
    validate_policy_name(name)?;
    let name = normalize_policy_name(name);
    if name == ROOT_POLICY {
        return Err(PolicyError::RootPolicy { action: "written" });
    }
    Ok(name)
}

#[cfg(any(test, feature = "testing"))]
/// The normalized name, if it is valid and a policy of that name may be deleted:
/// neither `root` nor `default`.
pub fn check_policy_deletable(name: &str) -> Result<String, PolicyError> {
    validate_policy_name(name)?;
    let name = normalize_policy_name(name);
    match name.as_str() {
        ROOT_POLICY => Err(PolicyError::RootPolicy { action: "deleted" }),
        DEFAULT_POLICY => Err(PolicyError::DeleteDefaultPolicy),
        _ => Ok(name),
    }
}

/// The access a set of policies grants, compiled for fast checks (see the module
/// documentation for the design).
///
/// Patterns are trusted to be as [`parse_policy`] returns them; in a rule built by
/// hand, whatever is not a trailing `*` or a whole `+` segment matches literally
/// (and a check recurses once per segment of the deepest pattern).
/// A policy named `root` is not special here: give root tokens [`Acl::root`].
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    /// Patterns without wildcards, keyed by the path they match.
    exact: HashMap<Box<str>, Capabilities>,
    /// Patterns with wildcards, each leaf holding the pattern's rank.
    wildcards: Node,
    /// The merged capabilities of each wildcard pattern, indexed by rank.
    by_rank: Vec<Capabilities>,
}

/// A trie node: the patterns whose leading whole segments lead here.
#[derive(Debug, Clone, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Rank of the non-glob pattern ending at this node.
    end: Option<u32>,
    /// Globs whose last full segment leads here: partial segment → rank.
    globs: HashMap<Box<str>, u32>,
    /// The distinct lengths of the keys of `globs`, longest first.
    glob_lens: Vec<usize>,
}

/// A wildcard pattern's shape, ordered by Vault's priority: greater wins.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Priority<'a> {
    /// Byte offset of the first `+` segment or the trailing `*`.
    first_wildcard: usize,
    not_glob: bool,
    plus_segments: Reverse<usize>,
    /// Length and text without the trailing `*`, as Vault compares them.
    len: usize,
    body: &'a str,
}

/// The pattern without its trailing `*`, and whether it had one.
fn split_glob(pattern: &str) -> (&str, bool) {
    match pattern.strip_suffix('*') {
        Some(body) => (body, true),
        None => (pattern, false),
    }
}

fn is_wildcard(pattern: &str) -> bool {
    pattern.ends_with('*') || pattern.split('/').any(|s| s == "+")
}

fn priority(pattern: &str) -> Priority<'_> {
    let (body, glob) = split_glob(pattern);
    let mut first_plus = None;
    let mut plus_segments = 0;
    let mut offset = 0;
    for segment in body.split('/') {
        if segment == "+" {
            first_plus.get_or_insert(offset);
            plus_segments += 1;
        }
        offset += segment.len() + 1;
    }
    Priority {
        first_wildcard: first_plus.unwrap_or(body.len()),
        not_glob: !glob,
        plus_segments: Reverse(plus_segments),
        len: body.len(),
        body,
    }
}

impl Node {
    fn insert(&mut self, pattern: &str, rank: u32) {
        let (body, glob) = split_glob(pattern);
        let mut segments: Vec<&str> = body.split('/').collect();
        let partial = if glob { segments.pop() } else { None };
        let mut node = self;
        for segment in segments {
            node = if segment == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.literal.entry(segment.into()).or_default()
            };
        }
        match partial {
            Some(partial) => {
                node.globs.insert(partial.into(), rank);
                if !node.glob_lens.contains(&partial.len()) {
                    node.glob_lens.push(partial.len());
                    node.glob_lens.sort_unstable_by(|a, b| b.cmp(a));
                }
            }
            None => node.end = Some(rank),
        }
    }

    /// Raises `best` to the rank of every pattern under this node matching `rest`,
    /// the path from this node's depth on.
    fn find(&self, rest: &str, best: &mut Option<u32>) {
        let (segment, next) = match rest.split_once('/') {
            Some((segment, next)) => (segment, Some(next)),
            None => (rest, None),
        };
        for &len in &self.glob_lens {
            if let Some(rank) = segment.get(..len).and_then(|prefix| self.globs.get(prefix)) {
                raise(best, *rank);
                break;
            }
        }
        let literal = self.literal.get(segment);
        let plus = if segment.is_empty() { None } else { self.plus.as_deref() };
        for child in literal.into_iter().chain(plus) {
            match next {
                Some(next) => child.find(next, best),
                None => {
                    if let Some(rank) = child.end {
                        raise(best, rank);
                    }
                }
            }
        }
    }
}

fn raise(best: &mut Option<u32>, rank: u32) {
    if best.is_none_or(|b| b < rank) {
        *best = Some(rank);
    }
}

impl Acl {
    /// Compiles `policies`. Their order, and the order of their rules, does not
    /// matter.
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Acl {
        let mut exact: HashMap<Box<str>, Capabilities> = HashMap::new();
        let mut wildcards: HashMap<&'a str, Capabilities> = HashMap::new();
        for rule in policies.into_iter().flat_map(|p| &p.rules) {
            let merged = if is_wildcard(&rule.pattern) {
                wildcards.entry(&rule.pattern).or_default()
            } else {
                exact.entry(rule.pattern.as_str().into()).or_default()
            };
            *merged |= rule.capabilities;
        }
        let deny_wins = |c: &mut Capabilities| {
            if c.contains(Capabilities::DENY) {
                *c = Capabilities::DENY;
            }
        };
        exact.values_mut().for_each(deny_wins);
        let mut ranked: Vec<(&str, Capabilities)> = wildcards.into_iter().collect();
        ranked.sort_by_cached_key(|(pattern, _)| priority(pattern));
        let mut trie = Node::default();
        let mut by_rank = Vec::with_capacity(ranked.len());
        for (rank, (pattern, mut capabilities)) in ranked.into_iter().enumerate() {
            deny_wins(&mut capabilities);
            trie.insert(pattern, rank as u32);
            by_rank.push(capabilities);
        }
        Acl { root: false, exact, wildcards: trie, by_rank }
    }

    /// The root ACL: every capability (sudo included) on every path. (The engine
    /// authorizes root tokens before it builds an ACL, so only tests use it.)
    #[cfg(any(test, feature = "testing"))]
    pub fn root() -> Acl {
        Acl { root: true, ..Acl::default() }
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The capabilities of the highest-priority pattern matching `path`: empty if
    /// none matches, exactly [`Capabilities::DENY`] if that pattern is denied.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ALL_GRANTS;
        }
        if let Some(capabilities) = self.exact.get(path) {
            return *capabilities;
        }
        if self.by_rank.is_empty() {
            return Capabilities::NONE;
        }
        let mut best = None;
        self.wildcards.find(path, &mut best);
        best.map_or(Capabilities::NONE, |rank| self.by_rank[rank as usize])
    }

    /// Whether `path` is not denied and grants every capability in `required`.
    /// (An empty `required` asks for nothing: it is allowed unless denied.)
    pub fn allows(&self, path: &str, required: Capabilities) -> bool {
        let granted = self.capabilities(path);
        !granted.contains(Capabilities::DENY) && granted.contains(required)
    }
}
