//! Vault's CLI takes long flags with one dash (`-path=db`, `-format=json`), as Go's
//! `flag` package does; clap wants two. Operators paste Vault commands, so both
//! spellings work: a single-dash word of two or more letters becomes `--word`.

/// Rewrites Vault-style `-flag[=value]` arguments to `--flag[=value]`. Leaves
/// alone: `-` (stdin), single-letter short flags (`-d`, `-f`), negative numbers,
/// `k=v` data, and everything after `--`.
///
/// One more spelling: after `audit log`, `--token T` is the filter the issue names
/// (`--token-secret`, hashed locally); everywhere else `--token` authenticates.
pub fn normalize(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if passthrough || arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let arg = match arg.strip_prefix('-') {
            Some(rest) if is_long_flag(rest) => format!("--{rest}"),
            _ => arg,
        };
        let in_audit_log = out.windows(2).any(|w| w[0] == "audit" && w[1] == "log");
        out.push(match arg.strip_prefix("--token") {
            Some(rest) if in_audit_log && (rest.is_empty() || rest.starts_with('=')) => format!("--token-secret{rest}"),
            _ => arg,
        });
    }
    out
}

/// `name` or `name=value`, where name is two or more of `[a-z-]` starting with a letter.
fn is_long_flag(rest: &str) -> bool {
    let name = rest.split_once('=').map_or(rest, |(n, _)| n);
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
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
