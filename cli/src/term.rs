//! What reaches the operator's terminal. Paths, names, errors and log records come
//! from any caller — even one with an invalid token, through the request path — so
//! every renderer passes text through [`escape`] (a table cell, a log line) or
//! [`escape_text`] (a block such as a policy's rules), and every byte the command
//! prints goes through [`print_out`] / [`print_err`] (the `outln!` and `errln!`
//! macros), which escape once more and never panic: a reader that closed stdout
//! (`lessor read … | head`) ends the output quietly.
//!
//! JSON output is escaped by serde_json (C0 controls, `"` and `\`); [`json_safe`]
//! also writes DEL, C1 and invisible formatting characters as `\uXXXX`, which is
//! the same JSON value and keeps the raw characters off the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `c` must not reach a terminal raw: C0 controls, DEL and C1 controls
/// (Unicode category Cc: ESC starts a terminal escape, BEL rings, NUL truncates,
/// CR overwrites the line), the line and paragraph separators, and the invisible
/// formatting characters (category Cf) — among them the bidi overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069) that make a terminal show text in
/// another order than it is stored, and zero-width characters that make two
/// different names look the same.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// One line's worth of text (a table cell, a log line, a name): every character
/// of [`needs_escape`], newlines and tabs included, written as a visible escape
/// (`\n`, `\t`, `\r`, `\x1b`, `\u{202e}`). Text without such characters is
/// returned as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_keeping(text, &[])
}

/// As [`escape`], keeping newlines and tabs: for a block printed on its own
/// lines (a policy's rules, a multi-line value, a whole message).
pub fn escape_text(text: &str) -> Cow<'_, str> {
    escape_keeping(text, &['\n', '\t'])
}

fn escape_keeping<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    let escaped = |c: char| needs_escape(c) && !keep.contains(&c);
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !escaped(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) <= 0xFF => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// `n` with its noun, singular or plural: `1 lease`, `2 leases`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// JSON text with every [`needs_escape`] character written as a `\uXXXX` escape
/// (a UTF-16 pair above U+FFFF). Outside strings JSON text holds only ASCII
/// punctuation and whitespace, so the structural `\n`, `\t`, `\r` and spaces are
/// left alone and only characters inside strings change: the value is the same.
pub fn json_safe(json: String) -> String {
    let escaped = |c: char| needs_escape(c) && !matches!(c, '\n' | '\t' | '\r');
    if !json.chars().any(escaped) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if !escaped(c) {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            let _ = write!(out, "\\u{unit:04x}");
        }
    }
    out
}

/// The reader closed stdout: later output is dropped without a word.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first failure to write stdout other than a closed pipe (a full disk).
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes `text` to stdout (escaped by [`escape_text`]) and flushes it. A closed
/// pipe (EPIPE) is remembered and later output dropped, so the command finishes
/// what it started (closing the engine, cleaning up) and exits quietly; any other
/// failure is remembered for [`stdout_failure`].
pub fn print_out(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let text = escape_text(text);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Writes `text` to stderr (escaped by [`escape_text`]); a stderr that cannot be
/// written is ignored (there is nowhere left to say so).
pub fn print_err(text: &str) {
    let text = escape_text(text);
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes()).and_then(|()| stderr.flush());
}

/// Whether some output was not written (the reader closed stdout, or a write failed).
pub fn stdout_lost() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// A failure to write stdout that was not a closed pipe, if any.
pub fn stdout_failure() -> Option<String> {
    STDOUT_FAILED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Marks stdout closed by the reader (a writer of its own saw EPIPE).
pub fn stdout_closed() {
    STDOUT_CLOSED.store(true, Ordering::Relaxed);
}

/// `println!` through [`print_out`]: escaped, and quiet on a closed stdout.
macro_rules! outln {
    () => {
        $crate::term::print_out("\n")
    };
    ($($arg:tt)*) => {
        $crate::term::print_out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`print_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::term::print_out(&format!($($arg)*))
    };
}

/// `eprintln!` through [`print_err`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::term::print_err(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` through [`print_err`].
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::term::print_err(&format!($($arg)*))
    };
}

pub(crate) use {err, errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_writes_every_control_and_invisible_character_visibly() {
        assert!(matches!(escape("database/creds/app-readonly"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2Jb\u{7}c\0d"), "a\\x1b[2Jb\\x07c\\x00d");
        assert_eq!(escape("line\nnext\ttab\rcr"), "line\\nnext\\ttab\\rcr");
        assert_eq!(escape("\u{7f}\u{9b}31m"), "\\x7f\\x9b31m", "DEL and C1 CSI");
        assert_eq!(escape("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe", "bidi override");
        assert_eq!(escape("a\u{200b}b\u{2066}c\u{feff}\u{e0041}"), "a\\u{200b}b\\u{2066}c\\u{feff}\\u{e0041}");
        assert_eq!(escape("naïve — ünïcode ✓ 日本"), "naïve — ünïcode ✓ 日本", "printable text stays");
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let e = escape(&c.to_string()).into_owned();
            assert!(e.starts_with('\\') && !e.chars().any(needs_escape), "{c:?} -> {e:?}");
        }
    }

    #[test]
    fn escape_text_keeps_newlines_and_tabs_only() {
        assert_eq!(
            escape_text("path \"x\" {\n\tcapabilities = [\"read\"]\n}\n"),
            "path \"x\" {\n\tcapabilities = [\"read\"]\n}\n"
        );
        assert_eq!(escape_text("a\r\n\u{1b}]0;owned\u{7}"), "a\\r\n\\x1b]0;owned\\x07");
    }

    #[test]
    fn json_safe_is_the_same_json_value_without_raw_invisible_characters() {
        let value = serde_json::json!({"path": "a\u{1b}\u{7}\u{7f}\u{85}\u{202e}\u{e0001}z", "n": [1, "\n"]});
        for text in [serde_json::to_string(&value).unwrap(), serde_json::to_string_pretty(&value).unwrap()] {
            let safe = json_safe(text.clone());
            assert!(!safe.chars().any(|c| needs_escape(c) && !matches!(c, '\n' | '\t' | '\r')), "{safe}");
            assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), value, "{safe}");
            assert_eq!(text.lines().count(), safe.lines().count());
        }
        assert!(json_safe("\"\u{202e}\"".into()).contains("\\u202e"));
        assert!(json_safe("\"\u{e0001}\"".into()).contains("\\udb40\\udc01"));
    }
}
