//! The one lexer for `"…"` strings, shared by the two small languages lessor reads
//! that have them: username templates (Go's interpreted strings) and password
//! policies (HCL's). Both read a string the same way — it ends at its line, and a
//! `\` must start one of the escapes the language allows — and differ only in that
//! set, which each passes in ([`GO_ESCAPES`], [`HCL_ESCAPES`]). Each reports the
//! error in its own terms, at the offset given here.

/// An escape: the character after `\`, and the character it stands for.
pub(crate) type Escape = (char, char);

/// Go's escapes, as far as username templates accept them: `\\ \" \n \t`.
pub(crate) const GO_ESCAPES: &[Escape] = &[('\\', '\\'), ('"', '"'), ('n', '\n'), ('t', '\t')];

/// HCL's escapes, as far as password policies accept them: `\\ \" \n \t \r`.
pub(crate) const HCL_ESCAPES: &[Escape] = &[('\\', '\\'), ('"', '"'), ('n', '\n'), ('t', '\t'), ('r', '\r')];

/// Why a string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QuotedError {
    /// No closing `"` before the end of the line or the text.
    #[error("unterminated string")]
    Unterminated { open: usize },
    /// A `\` at `at` followed by something the language does not allow.
    #[error("unsupported escape (use {})", escape_list(allowed))]
    UnsupportedEscape { at: usize, allowed: &'static [Escape] },
}

impl QuotedError {
    /// Where in the text the error is: the opening quote, or the bad `\`.
    pub(crate) fn offset(&self) -> usize {
        match self {
            QuotedError::Unterminated { open } => *open,
            QuotedError::UnsupportedEscape { at, .. } => *at,
        }
    }
}

/// `\\ \" \n …`: the escapes as written.
fn escape_list(allowed: &[Escape]) -> String {
    allowed.iter().map(|(written, _)| format!("\\{written}")).collect::<Vec<_>>().join(" ")
}

/// Reads the string whose opening `"` is at byte `open` of `text`: its value, and
/// the offset just past its closing `"`.
pub(crate) fn quoted(text: &str, open: usize, allowed: &'static [Escape]) -> Result<(String, usize), QuotedError> {
    debug_assert_eq!(text.as_bytes().get(open), Some(&b'"'));
    let body = open + 1;
    let mut out = String::new();
    let mut chars = text[body..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, body + i + 1)),
            '\\' => {
                let written = chars.next().map(|(_, c)| c);
                match allowed.iter().find(|(w, _)| Some(*w) == written) {
                    Some(&(_, meant)) => out.push(meant),
                    None => return Err(QuotedError::UnsupportedEscape { at: body + i, allowed }),
                }
            }
            '\n' => break,
            c => out.push(c),
        }
    }
    Err(QuotedError::Unterminated { open })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_escapes_and_the_offset_after_the_string() {
        let text = r#"x = "a\"b\\c\td" rest"#;
        assert_eq!(quoted(text, 4, GO_ESCAPES), Ok(("a\"b\\c\td".to_owned(), 16)));
        assert_eq!(&text[16..], " rest");
        assert_eq!(quoted(r#""é""#, 0, GO_ESCAPES), Ok(("é".to_owned(), 4)));
        assert_eq!(quoted(r#""\r""#, 0, HCL_ESCAPES), Ok(("\r".to_owned(), 4)));
    }

    #[test]
    fn errors_say_where_and_what_the_language_allows() {
        // Go has no `\r` here; HCL does.
        let err = quoted(r#"  "ab\r""#, 2, GO_ESCAPES).unwrap_err();
        assert_eq!(err, QuotedError::UnsupportedEscape { at: 5, allowed: GO_ESCAPES });
        assert_eq!(err.offset(), 5);
        assert_eq!(err.to_string(), "unsupported escape (use \\\\ \\\" \\n \\t)");
        let err = quoted(r#""\x""#, 0, HCL_ESCAPES).unwrap_err();
        assert_eq!(err.to_string(), "unsupported escape (use \\\\ \\\" \\n \\t \\r)");
        // A string ends at its line; a `\` at the very end is an unsupported escape.
        for text in ["\"abc", "\"ab\nc\"", "\""] {
            let err = quoted(text, 0, GO_ESCAPES).unwrap_err();
            assert_eq!(err, QuotedError::Unterminated { open: 0 }, "{text:?}");
            assert_eq!(err.to_string(), "unterminated string");
        }
        assert!(matches!(quoted("\"ab\\", 0, GO_ESCAPES), Err(QuotedError::UnsupportedEscape { at: 3, .. })));
    }
}
