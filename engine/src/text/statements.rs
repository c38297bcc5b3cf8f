//! Splitting a role's SQL text into statements, the way `psql` does.
//!
//! Vault accepts a role's statements as one string with `;` between statements or
//! as a JSON array of such strings; each statement then runs on its own. Splitting
//! on every `;` (what Vault's PostgreSQL plugin does) breaks a `DO $$ … $$` block or
//! a `';'` literal, so [`split_statements`] splits only on a `;` at the top level,
//! with PostgreSQL's lexical rules:
//!
//! * `'…'` strings with `''` escapes, and `E'…'` strings that also take `\` escapes
//!   (standard strings treat `\` literally: `standard_conforming_strings` is on);
//! * `"…"` identifiers with `""` escapes;
//! * dollar quotes `$$…$$` and `$tag$…$tag$`: only the exact opening delimiter closes
//!   one, so other tags nest inside; `$1` is a parameter, and a `$` inside a word
//!   (`a$b`) is part of the word, as in PostgreSQL;
//! * `-- …` line comments and nested `/* /* */ */` block comments;
//! * parentheses, and `psql`'s rule for SQL-standard function bodies: in
//!   `CREATE [OR REPLACE] {FUNCTION|PROCEDURE} … BEGIN ATOMIC … END` the `;`s between
//!   `BEGIN` and its `END` do not end the statement.
//!
//! Comments are removed (PostgreSQL reads a comment as a space, and a template
//! variable inside a comment would otherwise still be substituted), each statement
//! is trimmed, and empty statements are dropped.
//!
//! ```
//! use lessor_engine::text::statements::split_statements;
//!
//! let text = "CREATE ROLE \"{{name}}\"; DO $$ BEGIN RAISE NOTICE 'a;b'; END $$; -- done;";
//! let statements = split_statements(text)?;
//! assert_eq!(statements, ["CREATE ROLE \"{{name}}\"", "DO $$ BEGIN RAISE NOTICE 'a;b'; END $$"]);
//! # Ok::<(), lessor_engine::text::statements::StatementError>(())
//! ```

/// The most text a statement list may hold, in bytes (all items together).
pub const STATEMENTS_TEXT_BYTES_MAX: usize = 64 * 1024;
/// The most statements one list may split into.
pub(crate) const STATEMENTS_COUNT_MAX: usize = 256;

/// Why a statement list was refused. Offsets are byte offsets into the text that
/// was split (for [`normalize_statement_list`], into the item named by `Item`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    #[error("statements are {bytes} bytes, over the limit of {STATEMENTS_TEXT_BYTES_MAX}")]
    TooLong { bytes: usize },
    #[error("more than {STATEMENTS_COUNT_MAX} statements")]
    TooMany,
    #[error("statements contain a NUL byte at byte {offset}")]
    Nul { offset: usize },
    #[error("unterminated string literal: the ' at byte {offset} is never closed")]
    UnterminatedString { offset: usize },
    #[error("unterminated escape string: the E' at byte {offset} is never closed")]
    UnterminatedEscapeString { offset: usize },
    #[error("unterminated quoted identifier: the \" at byte {offset} is never closed")]
    UnterminatedIdentifier { offset: usize },
    #[error("unterminated dollar-quoted string: the {tag} at byte {offset} is never closed")]
    UnterminatedDollarQuote { offset: usize, tag: String },
    #[error("unterminated block comment: the /* at byte {offset} is never closed")]
    UnterminatedBlockComment { offset: usize },
    #[error("unclosed parenthesis: the ( at byte {offset} is never closed")]
    UnclosedParenthesis { offset: usize },
    #[error("unterminated function body: the BEGIN at byte {offset} has no END")]
    UnterminatedBegin { offset: usize },
    #[error("statement list item {index}: {source}")]
    Item { index: usize, source: Box<StatementError> },
}

/// Splits PostgreSQL text on its top-level `;`s: the statements, trimmed, without
/// comments and without empty ones (see the [module documentation](self)). The
/// engine splits through [`normalize_statement_list`]; tests and the fuzzer call
/// this directly.
#[cfg(any(test, feature = "testing"))]
pub fn split_statements(text: &str) -> Result<Vec<String>, StatementError> {
    if text.len() > STATEMENTS_TEXT_BYTES_MAX {
        return Err(StatementError::TooLong { bytes: text.len() });
    }
    let mut statements = Vec::new();
    Splitter::new(text).run(&mut statements)?;
    Ok(statements)
}

/// Splits every item and concatenates the statements, for a role whose statements
/// came as a JSON array (each element may itself hold several statements). The
/// limits apply to the whole list.
pub fn normalize_statement_list(items: &[String]) -> Result<Vec<String>, StatementError> {
    let bytes = items.iter().map(String::len).fold(0usize, usize::saturating_add);
    if bytes > STATEMENTS_TEXT_BYTES_MAX {
        return Err(StatementError::TooLong { bytes });
    }
    let mut statements = Vec::new();
    for (index, item) in items.iter().enumerate() {
        Splitter::new(item).run(&mut statements).map_err(|e| match (items.len(), e) {
            (1, e) | (_, e @ StatementError::TooMany) => e,
            (_, e) => StatementError::Item { index, source: Box::new(e) },
        })?;
    }
    Ok(statements)
}

/// Does `statement` rewrite catalog rows that the same statement for another
/// credential rewrites too? `GRANT … ON` / `REVOKE … ON` update each object's ACL
/// (its `pg_class` row, for tables), `ALTER DEFAULT PRIVILEGES` one `pg_default_acl`
/// row, `DROP OWNED` / `REASSIGN OWNED` the ACLs of whatever the role touched. Two
/// transactions doing so at once collide: the second waits for the first to commit,
/// then fails with `tuple concurrently updated`. A `DO` block may do any of these.
/// Role membership (`GRANT readers TO …`, `CREATE ROLE … IN ROLE readers`) only
/// inserts rows, and does not collide.
///
/// ```
/// use lessor_engine::text::statements::updates_shared_catalog_rows as shared;
///
/// assert!(shared(r#"GRANT SELECT ON ALL TABLES IN SCHEMA public TO "v-1""#));
/// assert!(shared(r#"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "v-1""#));
/// assert!(!shared(r#"GRANT readers TO "v-1""#));
/// assert!(!shared(r#"CREATE ROLE "v-1" WITH LOGIN PASSWORD 'p' IN ROLE readers"#));
/// ```
pub fn updates_shared_catalog_rows(statement: &str) -> bool {
    let lower = statement.to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    match (words.next(), words.next()) {
        (Some("grant" | "revoke"), second) => second == Some("on") || words.any(|w| w == "on"),
        (Some("alter"), Some("default")) => true,
        (Some("drop" | "reassign"), Some("owned")) => true,
        (Some("do"), _) => true,
        _ => false,
    }
}

/// PostgreSQL's `ident_start`: a letter, `_`, or any non-ASCII byte.
fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// PostgreSQL's `ident_cont`, without `$` (a dollar-quote tag may not hold one).
fn tag_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit()
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

struct Splitter<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The statement being built, and how far `text` has been copied into it.
    current: String,
    copied_to: usize,
    /// A comment was dropped since the last copy: copy a space in its place.
    comment_gap: bool,
    paren_depth: usize,
    paren_offset: usize,
    /// `psql`'s heuristic for `BEGIN ATOMIC … END` bodies: the first letter of the
    /// statement's first words when they are CREATE / OR / REPLACE / FUNCTION /
    /// PROCEDURE, and the depth of BEGIN (and CASE inside it) against END.
    words: usize,
    word_initials: [u8; 4],
    begin_depth: usize,
    begin_offset: usize,
}

impl<'a> Splitter<'a> {
    fn new(text: &'a str) -> Self {
        Splitter {
            text,
            bytes: text.as_bytes(),
            current: String::new(),
            copied_to: 0,
            comment_gap: false,
            paren_depth: 0,
            paren_offset: 0,
            words: 0,
            word_initials: [0; 4],
            begin_depth: 0,
            begin_offset: 0,
        }
    }

    fn run(mut self, statements: &mut Vec<String>) -> Result<(), StatementError> {
        let bytes = self.bytes;
        // PostgreSQL's protocol cannot carry a NUL anywhere in a query, comments included.
        if let Some(offset) = bytes.iter().position(|&b| b == 0) {
            return Err(StatementError::Nul { offset });
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let next = bytes.get(i + 1).copied();
            i = match b {
                b'\'' => self.skip_quoted(i, i + 1, b'\'', false)?,
                b'"' => self.skip_quoted(i, i + 1, b'"', false)?,
                b'$' => self.dollar(i)?,
                b'-' if next == Some(b'-') => {
                    self.copy_to(i);
                    let end = bytes[i..].iter().position(|&c| c == b'\n' || c == b'\r').map_or(bytes.len(), |p| i + p);
                    self.skip_comment(end)
                }
                b'/' if next == Some(b'*') => {
                    self.copy_to(i);
                    let end = self.block_comment_end(i)?;
                    self.skip_comment(end)
                }
                b'(' => {
                    if self.paren_depth == 0 {
                        self.paren_offset = i;
                    }
                    self.paren_depth += 1;
                    i + 1
                }
                b')' => {
                    self.paren_depth = self.paren_depth.saturating_sub(1);
                    i + 1
                }
                b';' if self.paren_depth == 0 && self.begin_depth == 0 => {
                    self.copy_to(i);
                    self.copied_to = i + 1;
                    self.finish(statements)?;
                    i + 1
                }
                b if b.is_ascii_digit() => {
                    // A number (and any junk glued to it) is one token: its letters are no word.
                    i + bytes[i..]
                        .iter()
                        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.'))
                        .unwrap_or(bytes.len() - i)
                }
                b if ident_start(b) => self.word(i)?,
                _ => i + 1,
            };
        }
        if self.paren_depth > 0 {
            return Err(StatementError::UnclosedParenthesis { offset: self.paren_offset });
        }
        if self.begin_depth > 0 {
            return Err(StatementError::UnterminatedBegin { offset: self.begin_offset });
        }
        self.copy_to(bytes.len());
        self.finish(statements)
    }

    /// Copies `text[copied_to..end]` into the statement. Where comments were
    /// dropped, exactly one space stands for them and the spaces around them.
    fn copy_to(&mut self, end: usize) {
        let mut segment = &self.text[self.copied_to..end];
        self.copied_to = end;
        if self.comment_gap {
            let after_space = self.current.chars().next_back().is_none_or(is_space);
            if after_space {
                segment = segment.trim_start_matches(is_space);
            }
            if segment.is_empty() {
                return;
            }
            if !after_space && !segment.starts_with(is_space) {
                self.current.push(' ');
            }
            self.comment_gap = false;
        }
        self.current.push_str(segment);
    }

    fn skip_comment(&mut self, end: usize) -> usize {
        self.comment_gap = true;
        self.copied_to = end;
        end
    }

    fn finish(&mut self, statements: &mut Vec<String>) -> Result<(), StatementError> {
        let statement = self.current.trim_matches(is_space);
        if !statement.is_empty() {
            if statements.len() >= STATEMENTS_COUNT_MAX {
                return Err(StatementError::TooMany);
            }
            statements.push(statement.to_owned());
        }
        self.current.clear();
        self.comment_gap = false;
        self.words = 0;
        self.word_initials = [0; 4];
        Ok(())
    }

    /// Skips a quoted string or identifier whose body starts at `from`; `open` is
    /// where it starts (for errors). A doubled quote is an escape; with
    /// `backslash`, so is `\` followed by any byte.
    fn skip_quoted(&self, open: usize, from: usize, quote: u8, backslash: bool) -> Result<usize, StatementError> {
        let bytes = self.bytes;
        let mut j = from;
        while j < bytes.len() {
            match bytes[j] {
                b'\\' if backslash => j += 2,
                c if c == quote => {
                    if bytes.get(j + 1) == Some(&quote) {
                        j += 2;
                    } else {
                        return Ok(j + 1);
                    }
                }
                _ => j += 1,
            }
        }
        Err(match (quote, backslash) {
            (b'"', _) => StatementError::UnterminatedIdentifier { offset: open },
            (_, true) => StatementError::UnterminatedEscapeString { offset: open },
            _ => StatementError::UnterminatedString { offset: open },
        })
    }

    /// At a `$` that is not inside a word: a dollar quote if a delimiter starts here,
    /// otherwise (`$1`, a lone `$`) one ordinary byte.
    fn dollar(&self, i: usize) -> Result<usize, StatementError> {
        let bytes = self.bytes;
        let mut j = i + 1;
        if bytes.get(j).is_some_and(|&b| ident_start(b)) {
            while bytes.get(j).is_some_and(|&b| tag_cont(b)) {
                j += 1;
            }
        }
        if bytes.get(j) != Some(&b'$') {
            return Ok(i + 1);
        }
        let delimiter = &self.text[i..=j];
        let body = &self.text[j + 1..];
        match body.find(delimiter) {
            Some(p) => Ok(j + 1 + p + delimiter.len()),
            None => Err(StatementError::UnterminatedDollarQuote { offset: i, tag: delimiter.to_owned() }),
        }
    }

    /// The end of the (nested) block comment opening at `open`.
    fn block_comment_end(&self, open: usize) -> Result<usize, StatementError> {
        let bytes = self.bytes;
        let mut depth = 1usize;
        let mut j = open + 2;
        while j + 1 < bytes.len() {
            match (bytes[j], bytes[j + 1]) {
                (b'*', b'/') => {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        return Ok(j);
                    }
                }
                (b'/', b'*') => {
                    depth += 1;
                    j += 2;
                }
                _ => j += 1,
            }
        }
        Err(StatementError::UnterminatedBlockComment { offset: open })
    }

    /// A keyword or unquoted identifier starting at `i` (`$` may continue one), or
    /// the `E` of an `E'…'` escape string.
    fn word(&mut self, i: usize) -> Result<usize, StatementError> {
        let bytes = self.bytes;
        let mut end = i + 1;
        while bytes.get(end).is_some_and(|&b| tag_cont(b) || b == b'$') {
            end += 1;
        }
        let word = &self.text[i..end];
        if bytes.get(end) == Some(&b'\'') && word.eq_ignore_ascii_case("e") {
            return self.skip_quoted(i, end + 1, b'\'', true);
        }
        self.count_word(i, word);
        Ok(end)
    }

    /// `psql`'s BEGIN … END tracking (psqlscan.l), so that a `BEGIN ATOMIC` body's
    /// `;`s stay inside its `CREATE FUNCTION` / `CREATE PROCEDURE`.
    fn count_word(&mut self, offset: usize, word: &str) {
        const HEADS: [&str; 5] = ["create", "function", "procedure", "or", "replace"];
        if self.words < self.word_initials.len() && HEADS.iter().any(|h| word.eq_ignore_ascii_case(h)) {
            self.word_initials[self.words] = word.as_bytes()[0].to_ascii_lowercase();
        }
        self.words = self.words.saturating_add(1);
        let [first, second, third, fourth] = self.word_initials;
        let routine = first == b'c'
            && (second == b'f'
                || second == b'p'
                || (second == b'o' && third == b'r' && (fourth == b'f' || fourth == b'p')));
        if !routine || self.paren_depth != 0 {
            return;
        }
        if word.eq_ignore_ascii_case("begin") {
            if self.begin_depth == 0 {
                self.begin_offset = offset;
            }
            self.begin_depth += 1;
        } else if word.eq_ignore_ascii_case("case") {
            if self.begin_depth >= 1 {
                self.begin_depth += 1;
            }
        } else if word.eq_ignore_ascii_case("end") {
            self.begin_depth = self.begin_depth.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        split_statements(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn article_role_statements_are_three() {
        let text = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
                    GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; \
                    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
        assert_eq!(
            split(text),
            [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\"",
            ]
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(split("SELECT 'a;''b'; SELECT 2"), ["SELECT 'a;''b'", "SELECT 2"]);
        // A standard string ends at the first lone quote, even after a backslash.
        assert_eq!(split(r"SELECT 'a\'; SELECT 2"), [r"SELECT 'a\'", "SELECT 2"]);
        assert_eq!(split(r"SELECT E'a\';b'; SELECT 2"), [r"SELECT E'a\';b'", "SELECT 2"]);
        assert_eq!(split(r"SELECT e'a\\'; SELECT 2"), [r"SELECT e'a\\'", "SELECT 2"]);
        // `E` inside a word does not start an escape string.
        assert_eq!(split(r"SELECT nE'a\'; SELECT 2"), [r"SELECT nE'a\'", "SELECT 2"]);
        assert_eq!(split("CREATE ROLE \"a;\"\"b\"; SELECT 1"), ["CREATE ROLE \"a;\"\"b\"", "SELECT 1"]);
    }

    #[test]
    fn dollar_quotes() {
        assert_eq!(split("DO $$ BEGIN PERFORM 1; END $$; SELECT 1"), ["DO $$ BEGIN PERFORM 1; END $$", "SELECT 1"]);
        let nested = "DO $outer$ BEGIN EXECUTE $inner$ SELECT 1; $inner$; END $outer$; SELECT 2";
        assert_eq!(split(nested), ["DO $outer$ BEGIN EXECUTE $inner$ SELECT 1; $inner$; END $outer$", "SELECT 2"]);
        // `$1` is a parameter; `a$b$` is one identifier.
        assert_eq!(split("SELECT $1; SELECT a$b$; SELECT 3"), ["SELECT $1", "SELECT a$b$", "SELECT 3"]);
        // Tags are case-sensitive: `$A$` does not close `$a$`.
        assert_eq!(split("SELECT $a$ x; $A$ y; $a$; SELECT 4"), ["SELECT $a$ x; $A$ y; $a$", "SELECT 4"]);
        assert_eq!(split("SELECT $_t1$;$_t1$"), ["SELECT $_t1$;$_t1$"]);
        assert_eq!(split("SELECT 1$$;$$"), ["SELECT 1$$;$$"]);
    }

    #[test]
    fn comments_are_dropped() {
        assert_eq!(split("SELECT 1 -- it's; \"odd\"\n; SELECT 2"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(split("SELECT/* a; /* b; */ 'c */ 1; SELECT 2"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(split("SELECT/**/1"), ["SELECT 1"]);
        assert_eq!(split("SELECT /* a */ /* b */\n 1 -- c\n FROM t"), ["SELECT 1 FROM t"]);
        assert_eq!(split("/* lead */ SELECT 1"), ["SELECT 1"]);
        assert_eq!(split("-- only a comment;\n/* and ; another */;;"), Vec::<String>::new());
        assert_eq!(split("SELECT '--;' ; SELECT '/*'"), ["SELECT '--;'", "SELECT '/*'"]);
        assert_eq!(split("SELECT 1 --"), ["SELECT 1"]);
    }

    #[test]
    fn function_bodies_and_parentheses() {
        let atomic = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC \
                      SELECT CASE WHEN true THEN 1 END; SELECT 2; END; SELECT 3";
        let statements = split(atomic);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].ends_with("SELECT 2; END"), "{statements:?}");
        // Outside CREATE FUNCTION, BEGIN is a transaction statement.
        assert_eq!(split("BEGIN; SELECT 1; END;"), ["BEGIN", "SELECT 1", "END"]);
        assert_eq!(split("SELECT (1;2); SELECT 3"), ["SELECT (1;2)", "SELECT 3"]);
    }

    #[test]
    fn empty_statements_and_whitespace() {
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split(" ;\n;\t; "), Vec::<String>::new());
        assert_eq!(split("\n  SELECT 1 \n"), ["SELECT 1"]);
    }

    #[test]
    fn errors_name_the_offset() {
        assert_eq!(split_statements("SELECT 'abc"), Err(StatementError::UnterminatedString { offset: 7 }));
        assert_eq!(split_statements(r"SELECT E'ab\'"), Err(StatementError::UnterminatedEscapeString { offset: 7 }));
        assert_eq!(split_statements("SELECT \"ab"), Err(StatementError::UnterminatedIdentifier { offset: 7 }));
        assert_eq!(
            split_statements("DO $x$ body $y$;"),
            Err(StatementError::UnterminatedDollarQuote { offset: 3, tag: "$x$".into() })
        );
        assert_eq!(split_statements("/* /* */ x"), Err(StatementError::UnterminatedBlockComment { offset: 0 }));
        assert_eq!(split_statements("SELECT (1"), Err(StatementError::UnclosedParenthesis { offset: 7 }));
        assert_eq!(
            split_statements("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;"),
            Err(StatementError::UnterminatedBegin { offset: 20 })
        );
        assert_eq!(split_statements("SELECT 1\0"), Err(StatementError::Nul { offset: 8 }));
        assert_eq!(split_statements("SELECT E'\\\0'"), Err(StatementError::Nul { offset: 10 }));
        assert_eq!(split_statements("SELECT 1 -- \0"), Err(StatementError::Nul { offset: 12 }));
    }

    #[test]
    fn limits() {
        let long = "x".repeat(STATEMENTS_TEXT_BYTES_MAX + 1);
        assert_eq!(split_statements(&long), Err(StatementError::TooLong { bytes: long.len() }));
        let many = "SELECT 1;".repeat(STATEMENTS_COUNT_MAX);
        assert_eq!(split(&many).len(), STATEMENTS_COUNT_MAX);
        let too_many = format!("{many}SELECT 1");
        assert_eq!(split_statements(&too_many), Err(StatementError::TooMany));
    }

    #[test]
    fn normalize_flattens_and_names_the_item() {
        let items = vec!["SELECT 1; SELECT 2".to_owned(), "SELECT 3".to_owned()];
        assert_eq!(normalize_statement_list(&items).unwrap(), ["SELECT 1", "SELECT 2", "SELECT 3"]);
        let bad = vec!["SELECT 1".to_owned(), "SELECT 'x".to_owned()];
        let err = normalize_statement_list(&bad).unwrap_err();
        assert_eq!(
            err,
            StatementError::Item { index: 1, source: Box::new(StatementError::UnterminatedString { offset: 7 }) }
        );
        assert_eq!(
            err.to_string(),
            "statement list item 1: unterminated string literal: the ' at byte 7 is never closed"
        );
        let single = vec!["SELECT 'x".to_owned()];
        assert_eq!(normalize_statement_list(&single), Err(StatementError::UnterminatedString { offset: 7 }));
        let many = vec!["SELECT 1;".repeat(200), "SELECT 1;".repeat(57)];
        assert_eq!(normalize_statement_list(&many), Err(StatementError::TooMany));
    }
}
