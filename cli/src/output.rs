//! Printing replies the way Vault's CLI does: `Key  Value` tables by default,
//! the whole JSON reply with `-format=json`.

use std::borrow::Cow;
use std::fmt::Write as _;

use lessor_engine::request::Response;
use serde_json::{Map, Value};

use crate::term;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Seconds in Go's duration style, as Vault prints them: `768h`, `1h30m`, `45s`.
pub fn duration(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 {
        let _ = write!(out, "{s}s");
    }
    out
}

/// A value as Vault's table shows it: strings bare, lists as `[a b]`, maps as `map[k:v]`.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            format!("map[{}]", map.iter().map(|(k, v)| format!("{k}:{}", value(v))).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

/// A two-column table with Vault's `Key`/`---` header and aligned values. Keys
/// and values are escaped ([`term::escape`]): one row per line, nothing raw.
pub fn table(rows: &[(String, String)]) -> String {
    let rows: Vec<(Cow<'_, str>, Cow<'_, str>)> =
        rows.iter().map(|(k, v)| (term::escape(k), term::escape(v))).collect();
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0).max(3);
    let mut out = format!("{:<width$}    Value\n{:<width$}    -----\n", "Key", "---");
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}    {v}");
    }
    out
}

/// Vault prints warnings before the data, on stderr (table format only: with
/// `-format=json` they are in the reply's `warnings` field), each wrapped at 80
/// columns behind two spaces.
pub fn warnings(response: &Response) -> Option<String> {
    let warnings = response.warnings.as_ref().filter(|w| !w.is_empty())?;
    let mut out = String::from("WARNING! The following warnings were returned from lessor:\n\n");
    for w in warnings {
        let _ = writeln!(out, "{}\n", wrap(&format!("* {}", term::escape(w)), WRAP_COLUMNS, 2));
    }
    Some(out)
}

/// Where Vault's CLI wraps its messages.
const WRAP_COLUMNS: usize = 80;

/// Words of `text` in lines of at most `columns` characters, each behind `pad`
/// spaces (a word longer than a line gets a line of its own).
pub fn wrap(text: &str, columns: usize, pad: usize) -> String {
    let width = columns.saturating_sub(pad).max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    let indent = " ".repeat(pad);
    lines.iter().map(|l| format!("{indent}{l}")).collect::<Vec<_>>().join("\n")
}

/// Does Vault's table show this field as a duration (`ttl`, `*_ttl`, `period`,
/// `*_period`)?
fn is_duration_key(key: &str) -> bool {
    key == "ttl" || key.ends_with("_ttl") || key == "period" || key.ends_with("_period")
}

/// A field's value as the table shows it: seconds humanized for durations.
fn field_value(key: &str, v: &Value) -> String {
    let seconds = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    match seconds {
        Some(seconds) if is_duration_key(key) => duration(seconds),
        _ => value(v),
    }
}

/// The rows Vault shows for a reply: lease fields first, then the token (`auth`)
/// fields, then `data`'s keys in order.
pub fn response_rows(response: &Response) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if !response.lease_id.is_empty() {
        rows.push(("lease_id".to_string(), response.lease_id.clone()));
        rows.push(("lease_duration".to_string(), duration(response.lease_duration)));
        rows.push(("lease_renewable".to_string(), response.renewable.to_string()));
    }
    if let Some(auth) = &response.auth {
        let duration = if auth.lease_duration == 0 { "∞".to_string() } else { duration(auth.lease_duration) };
        rows.push(("token".to_string(), auth.client_token.clone()));
        rows.push(("token_accessor".to_string(), auth.accessor.clone()));
        rows.push(("token_duration".to_string(), duration));
        rows.push(("token_renewable".to_string(), auth.renewable.to_string()));
        rows.push(("token_policies".to_string(), value(&auth.token_policies.clone().into())));
        rows.push(("policies".to_string(), value(&auth.policies.clone().into())));
    }
    if let Some(data) = &response.data {
        rows.extend(data_rows(data));
    }
    rows
}

pub fn data_rows(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.into_iter().map(|k| (k.clone(), field_value(k, &data[k]))).collect()
}

/// `vault list` output: a `Keys` column, each key escaped.
pub fn keys(keys: &[String]) -> String {
    let mut out = String::from("Keys\n----\n");
    for k in keys {
        let _ = writeln!(out, "{}", term::escape(k));
    }
    out
}

/// The `keys` of a list reply, or none.
pub fn list_keys(response: &Response) -> Vec<String> {
    response
        .data
        .as_ref()
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect())
        .unwrap_or_default()
}

/// Pretty JSON with no raw control or invisible character ([`term::json_safe`]).
pub fn json(v: &Value) -> String {
    term::json_safe(serde_json::to_string_pretty(v).expect("JSON values always serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(duration(3600), "1h");
        assert_eq!(duration(5400), "1h30m");
        assert_eq!(duration(2_764_800), "768h");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(0), "0s");
    }

    #[test]
    fn table_aligns_and_lists_like_vault() {
        let t = table(&[("lease_id".into(), "a/b".into()), ("ttl".into(), value(&json!(["x", "y"])))]);
        assert_eq!(t, "Key         Value\n---         -----\nlease_id    a/b\nttl         [x y]\n");
    }

    #[test]
    fn table_keys_and_warnings_escape_what_a_caller_wrote() {
        let t = table(&[("k\u{1b}[2J".into(), "v\n---         forged\u{7}".into())]);
        assert_eq!(t, "Key         Value\n---         -----\nk\\x1b[2J    v\\n---         forged\\x07\n");
        assert_eq!(keys(&["a\u{202e}b".into()]), "Keys\n----\na\\u{202e}b\n");
        let response = Response { warnings: Some(vec!["w\u{9b}31m".into()]), ..Response::default() };
        assert!(warnings(&response).unwrap().contains("  * w\\x9b31m\n"));
        let j = json(&serde_json::json!({"p": "\u{1b}\u{7f}\u{202e}"}));
        assert_eq!(j, "{\n  \"p\": \"\\u001b\\u007f\\u202e\"\n}");
    }

    #[test]
    fn warnings_wrap_at_80_columns_like_vaults() {
        let long = "TTL of \"768h\" exceeded the effective max_ttl of \"24h\"; TTL value is capped accordingly";
        let response = Response { warnings: Some(vec![long.into()]), ..Response::default() };
        let text = warnings(&response).unwrap();
        let lines: Vec<&str> = text.lines().skip(2).filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            ["  * TTL of \"768h\" exceeded the effective max_ttl of \"24h\"; TTL value is capped", "  accordingly"]
        );
        assert!(text.lines().all(|l| l.chars().count() <= 80));
    }

    #[test]
    fn durations_in_data_print_humanized_where_vault_humanizes_them() {
        let data =
            json!({"ttl": 2_764_800, "default_ttl": "3600", "creation_ttl": 90, "token_period": 0, "num_uses": 3})
                .as_object()
                .unwrap()
                .clone();
        let rows: std::collections::BTreeMap<String, String> = data_rows(&data).into_iter().collect();
        assert_eq!(rows["ttl"], "768h");
        assert_eq!(rows["default_ttl"], "1h");
        assert_eq!(rows["creation_ttl"], "1m30s");
        assert_eq!(rows["token_period"], "0s");
        assert_eq!(rows["num_uses"], "3");
    }

    #[test]
    fn lease_reply_rows_come_first_then_sorted_data() {
        let response = Response {
            lease_id: "database/creds/r/abc".into(),
            lease_duration: 3600,
            renewable: true,
            data: Some(json!({"username": "v-u", "password": "p"}).as_object().unwrap().clone()),
            ..Response::default()
        };
        let keys: Vec<String> = response_rows(&response).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["lease_id", "lease_duration", "lease_renewable", "password", "username"]);
    }
}
