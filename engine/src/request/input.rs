//! Reading a request's `data`: typed accessors that name the field in every error,
//! and a final check that refuses fields the handler does not know (a misspelt
//! `ttl` silently ignored would hand out a credential with the wrong lifetime).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::RequestError;

/// The longest duration accepted anywhere: 100 years.
pub(crate) const DURATION_MS_MAX: u64 = 100 * 365 * 24 * 3600 * 1000;
/// The largest `data` object a request may carry, in fields.
pub(crate) const DATA_FIELDS_MAX: usize = 64;

/// A request's `data`, consumed field by field.
#[derive(Debug)]
pub(crate) struct Input {
    map: Map<String, Value>,
    used: BTreeSet<String>,
}

fn bad(field: &str, what: &str) -> RequestError {
    RequestError::invalid(format!("field \"{field}\": {what}"))
}

impl Input {
    /// `data` must be a JSON object (or null, meaning empty).
    pub(crate) fn new(data: Value) -> Result<Input, RequestError> {
        let map = match data {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            other => {
                return Err(RequestError::invalid(format!(
                    "request data must be a JSON object, got {}",
                    json_type(&other)
                )));
            }
        };
        if map.len() > DATA_FIELDS_MAX {
            return Err(RequestError::invalid(format!(
                "request data has {} fields; at most {DATA_FIELDS_MAX} are accepted",
                map.len()
            )));
        }
        Ok(Input { map, used: BTreeSet::new() })
    }

    fn take(&mut self, field: &str) -> Option<&Value> {
        self.used.insert(field.to_string());
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// Fields Vault's clients send whose every non-default value asks for
    /// something lessor does not do (`seal_wrap`, a token `period`, an entity
    /// alias, …): accepted at their default (null, `false`, `""`, `0`, `"0s"`,
    /// `{}`, `[]`, or one of `also`), refused otherwise with the field named,
    /// so a request never silently gets less than it asked for.
    pub(crate) fn default_only(&mut self, fields: &[&str], also: &[&str]) -> Result<(), RequestError> {
        for field in fields {
            let Some(value) = self.take(field) else { continue };
            let default = match value {
                Value::Bool(b) => !b,
                Value::String(s) => s.is_empty() || s == "0" || s == "0s" || also.contains(&s.as_str()),
                Value::Number(n) => n.as_f64() == Some(0.0),
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Null => true,
            };
            if !default {
                return Err(bad(field, "lessor does not support it; leave it unset"));
            }
        }
        Ok(())
    }

    pub(crate) fn string(&mut self, field: &str) -> Result<Option<String>, RequestError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(bad(field, &format!("must be a string, got {}", json_type(other)))),
        }
    }

    /// A required string; `hint` says what to put there.
    pub(crate) fn required_string(&mut self, field: &str, hint: &str) -> Result<String, RequestError> {
        match self.string(field)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(bad(field, &format!("is required: {hint}"))),
        }
    }

    pub(crate) fn bool(&mut self, field: &str) -> Result<Option<bool>, RequestError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" | "" => Ok(Some(false)),
                _ => Err(bad(field, "must be true or false")),
            },
            Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => Ok(Some(n.as_u64() == Some(1))),
            Some(other) => Err(bad(field, &format!("must be true or false, got {}", json_type(other)))),
        }
    }

    pub(crate) fn u64(&mut self, field: &str, max: u64) -> Result<Option<u64>, RequestError> {
        let value = match self.take(field) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad(field, "must be a whole number ≥ 0"))?,
            Some(Value::String(s)) => s.trim().parse().map_err(|_| bad(field, "must be a whole number ≥ 0"))?,
            Some(other) => return Err(bad(field, &format!("must be a number, got {}", json_type(other)))),
        };
        if value > max {
            return Err(bad(field, &format!("must be at most {max}")));
        }
        Ok(Some(value))
    }

    /// A duration: whole seconds (`3600`, `"3600"`) or Go-style units (`"1h30m"`, `"45s"`, `"7d"`).
    pub(crate) fn duration_ms(&mut self, field: &str) -> Result<Option<u64>, RequestError> {
        let text = match self.take(field) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(|s| s.to_string()).ok_or_else(|| bad(field, DURATION_HINT))?,
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(bad(field, &format!("must be a duration, got {}", json_type(other)))),
        };
        parse_duration_ms(&text).map(Some).map_err(|what| bad(field, &what))
    }

    /// A list of strings: a JSON array, or one comma-separated string (Vault accepts both).
    pub(crate) fn string_list(&mut self, field: &str) -> Result<Option<Vec<String>>, RequestError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                Ok(Some(s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()))
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(bad(field, &format!("must be a list of strings, found {}", json_type(other)))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| Some(v.into_iter().filter(|s| !s.is_empty()).collect())),
            Some(other) => Err(bad(field, &format!("must be a list of strings, got {}", json_type(other)))),
        }
    }

    /// A list given as a JSON array of strings, or as one string taken whole (not
    /// split on commas): SQL statements contain commas.
    pub(crate) fn string_list_raw(&mut self, field: &str) -> Result<Option<Vec<String>>, RequestError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(if s.trim().is_empty() { vec![] } else { vec![s.clone()] })),
            Some(Value::Array(_)) => self.string_list(field),
            Some(other) => Err(bad(field, &format!("must be a string or a list of strings, got {}", json_type(other)))),
        }
    }

    /// A nested object, read with its own [`Input`] (e.g. a mount's `config`).
    pub(crate) fn object(&mut self, field: &str) -> Result<Option<Input>, RequestError> {
        match self.take(field) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Input::new(v.clone()).map(Some),
            Some(other) => Err(bad(field, &format!("must be an object, got {}", json_type(other)))),
        }
    }

    /// Refuses any field the handler did not read; `known` lists the accepted ones.
    pub(crate) fn finish(self) -> Result<(), RequestError> {
        let unknown: Vec<&String> = self.map.keys().filter(|k| !self.used.contains(*k)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<&str> = self.used.iter().map(String::as_str).collect();
        Err(RequestError::invalid(format!(
            "unknown field{} {}; this path accepts: {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.iter().map(|k| format!("\"{}\"", truncate(k, 64))).collect::<Vec<_>>().join(", "),
            if known.is_empty() { "no fields".to_string() } else { known.join(", ") }
        )))
    }
}

const DURATION_HINT: &str = "must be a duration such as 3600, \"30m\", \"1h\" or \"768h\"";

/// Parses `3600`, `"1h30m"`, `"90s"`, `"500ms"`, `"7d"` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DURATION_HINT.into());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return seconds.checked_mul(1000).filter(|&ms| ms <= DURATION_MS_MAX).ok_or_else(too_long);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(DURATION_HINT.into());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("{DURATION_HINT} (units: ms, s, m, h, d)")),
        };
        rest = &rest[unit_len..];
        total = number.checked_mul(unit_ms).and_then(|v| total.checked_add(v)).ok_or_else(too_long)?;
    }
    if total > DURATION_MS_MAX {
        return Err(too_long());
    }
    Ok(total)
}

fn too_long() -> String {
    format!("is longer than the maximum of {}h", DURATION_MS_MAX / 3_600_000)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("3600"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("768h"), Ok(768 * 3_600_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert!(parse_duration_ms("1x").unwrap_err().contains("units"));
        assert!(parse_duration_ms("h").is_err());
        assert!(parse_duration_ms("99999999999999999999h").is_err());
        assert!(parse_duration_ms("1000000000h").unwrap_err().contains("maximum"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let mut input = Input::new(json!({"ttl": "1h", "tll": "2h"})).unwrap();
        assert_eq!(input.duration_ms("ttl").unwrap(), Some(3_600_000));
        let err = input.finish().unwrap_err().to_string();
        assert!(err.contains("\"tll\"") && err.contains("accepts: ttl"), "{err}");
    }

    #[test]
    fn lists_accept_arrays_and_commas() {
        let mut input = Input::new(json!({"a": "x, y", "b": ["z"], "c": 5})).unwrap();
        assert_eq!(input.string_list("a").unwrap(), Some(vec!["x".into(), "y".into()]));
        assert_eq!(input.string_list("b").unwrap(), Some(vec!["z".into()]));
        assert!(input.string_list("c").unwrap_err().to_string().contains("\"c\""));
    }

    #[test]
    fn data_must_be_an_object() {
        assert!(Input::new(json!([1])).unwrap_err().to_string().contains("JSON object"));
        assert!(Input::new(Value::Null).is_ok());
    }
}
