//! Vault's CLI takes long flags with one dash (`-path=db`, `-format=json`), as Go's
//! `flag` package does; clap wants two. Operators paste Vault commands, so both
//! spellings work: a single-dash word of two or more letters becomes `--word`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// [`normalize_os`] over `String`s, for tests that spell command lines as text.
#[cfg(test)]
pub fn normalize(args: impl IntoIterator<Item = String>) -> Vec<String> {
    normalize_os(args.into_iter().map(OsString::from))
        .into_iter()
        .map(|a| a.into_string().expect("UTF-8 in, UTF-8 out"))
        .collect()
}

/// Rewrites Vault-style `-flag[=value]` arguments to `--flag[=value]`. Leaves
/// alone: `-` (stdin), single-letter short flags (`-d`, `-f`), negative numbers,
/// `k=v` data, and everything after `--`.
///
/// One more spelling: after `audit log`, `--token T` is the filter the issue names
/// (`--token-secret`, hashed locally); everywhere else `--token` authenticates.
///
/// Arguments are taken as the system gives them: one that is not UTF-8 passes
/// through (a `-flag=` before its value is still rewritten), so a path such as
/// `-d DIR` may be any bytes, and clap refuses any other that must be text
/// ([`not_utf8`] names it).
pub fn normalize_os(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if passthrough || arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let bytes = arg.as_bytes();
        let arg = match bytes.strip_prefix(b"-") {
            Some(rest) if is_long_flag(rest) => {
                let mut long = OsString::from("-");
                long.push(&arg);
                long
            }
            _ => arg,
        };
        let in_audit_log = out.windows(2).any(|w| w[0] == "audit" && w[1] == "log");
        out.push(match arg.as_bytes().strip_prefix(b"--token") {
            Some(rest) if in_audit_log && (rest.is_empty() || rest.starts_with(b"=")) => {
                let mut filter = OsString::from("--token-secret");
                filter.push(OsStr::from_bytes(rest));
                filter
            }
            _ => arg,
        });
    }
    out
}

/// Names the first argument that is not UTF-8 — by position (1 = the first word
/// after `lessor`) and the flag it is the value of — never by its bytes, which may
/// be a token: clap's own error does not say which argument it was. Then the
/// `LESSOR_*` environment variable, by name.
pub fn not_utf8(args: &[OsString], env: impl IntoIterator<Item = (OsString, OsString)>) -> Option<String> {
    let found = args.iter().enumerate().skip(1).find(|(_, a)| a.to_str().is_none());
    if let Some((i, arg)) = found {
        let flag = |word: &OsStr| {
            let bytes = word.as_bytes();
            let name = bytes.split(|&b| b == b'=').next().unwrap_or(bytes);
            let name = name.strip_prefix(b"--").or_else(|| name.strip_prefix(b"-"))?;
            (!name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-'))
                .then(|| String::from_utf8_lossy(name).into_owned())
        };
        let of = match flag(arg) {
            Some(name) if arg.as_bytes().contains(&b'=') => format!(" (the value of -{name})"),
            _ => match args.get(i - 1).filter(|_| i > 1).and_then(|prev| flag(prev)) {
                Some(name) => format!(" (the value of -{name}, or the argument after it)"),
                None => String::new(),
            },
        };
        return Some(format!("argument {i}{of}"));
    }
    env.into_iter().find_map(|(name, value)| {
        let name = name.to_str()?;
        (name.starts_with("LESSOR_") && value.to_str().is_none()).then(|| format!("the environment variable {name}"))
    })
}

/// `name` or `name=value`, where name is two or more of `[a-z-]` starting with a
/// letter (the value may be any bytes).
fn is_long_flag(rest: &[u8]) -> bool {
    let name = rest.split(|&b| b == b'=').next().unwrap_or(rest);
    name.len() >= 2 && name[0].is_ascii_lowercase() && name.iter().all(|&b| b.is_ascii_lowercase() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn vault_single_dash_flags_become_long_flags() {
        assert_eq!(n(&["secrets", "enable", "-path=db", "database"]), ["secrets", "enable", "--path=db", "database"]);
        assert_eq!(n(&["-format", "json"]), ["--format", "json"]);
        assert_eq!(n(&["token", "create", "-display-name=app-A"]), ["token", "create", "--display-name=app-A"]);
    }

    #[test]
    fn token_after_audit_log_is_the_filter_elsewhere_the_credential() {
        assert_eq!(n(&["audit", "log", "-token=lsr.x"]), ["audit", "log", "--token-secret=lsr.x"]);
        assert_eq!(n(&["audit", "log", "--token", "lsr.x"]), ["audit", "log", "--token-secret", "lsr.x"]);
        assert_eq!(n(&["-token=a", "audit", "log"]), ["--token=a", "audit", "log"]);
        assert_eq!(n(&["read", "-token=a", "x"]), ["read", "--token=a", "x"]);
        assert_eq!(n(&["audit", "log", "--token-secret=s"]), ["audit", "log", "--token-secret=s"]);
    }

    #[test]
    fn short_flags_stdin_data_and_passthrough_stay() {
        assert_eq!(n(&["write", "-f", "p"]), ["write", "-f", "p"]);
        assert_eq!(n(&["-d", "/x", "policy", "write", "a", "-"]), ["-d", "/x", "policy", "write", "a", "-"]);
        assert_eq!(n(&["write", "p", "a=-b", "-1"]), ["write", "p", "a=-b", "-1"]);
        assert_eq!(n(&["--", "-path=x"]), ["--", "-path=x"]);
        assert_eq!(n(&["--format=json"]), ["--format=json"]);
    }
}
