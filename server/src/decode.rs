//! An HTTP request, read as Vault's clients send it, into one engine request:
//! the operation from the method, the path after `/v1/`, the token from
//! `X-Vault-Token` or `Authorization: Bearer`, and the data from the JSON body
//! (writes) or the query string (reads, lists, deletes).

use hyper::Method;
use hyper::header::{AUTHORIZATION, HeaderMap};
use lessor_engine::request::Operation;
use serde_json::{Map, Value};

use crate::encode::Refusal;

/// What the request asks the engine.
#[derive(Debug)]
pub(crate) struct Call {
    pub operation: Operation,
    /// The path after `/v1/`, percent-decoded.
    pub path: String,
    pub token: String,
    pub data: Value,
}

/// Vault's token header.
pub(crate) const TOKEN_HEADER: &str = "x-vault-token";
/// Response wrapping, which lessor does not do.
const WRAP_TTL_HEADER: &str = "x-vault-wrap-ttl";

/// The token a request carries: `X-Vault-Token`, else `Authorization: Bearer`.
pub(crate) fn token(headers: &HeaderMap) -> String {
    if let Some(value) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return value.trim().to_string();
    }
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// The path after `/v1/`, percent-decoded, or the refusal for one outside it.
pub(crate) fn api_path(uri_path: &str) -> Result<String, Refusal> {
    let Some(rest) = uri_path.strip_prefix("/v1/") else {
        return Err(Refusal::not_found(format!(
            "no such endpoint \"{}\": the API is under /v1/, e.g. /v1/sys/health",
            truncate(uri_path, 128)
        )));
    };
    let path =
        percent_decode(rest).ok_or_else(|| Refusal::bad_request("the path is not valid percent-encoded UTF-8"))?;
    // An encoded `?` would reach the engine as a query string of its own: data
    // smuggled past the query the server parsed. No Vault path holds one.
    if path.contains(['?', '#']) {
        return Err(Refusal::bad_request("the path may not contain an encoded \"?\" or \"#\""));
    }
    Ok(path)
}

/// The engine operation of a method, with `?list=true` making a GET a list.
pub(crate) fn operation(method: &Method, list: bool) -> Result<Operation, Refusal> {
    Ok(match method.as_str() {
        "GET" if list => Operation::List,
        "GET" => Operation::Read,
        "LIST" => Operation::List,
        "PUT" | "POST" => Operation::Update,
        "DELETE" => Operation::Delete,
        other => {
            return Err(Refusal::method_not_allowed(format!(
                "method {} is not allowed; use GET, LIST, PUT, POST or DELETE",
                truncate(other, 16)
            )));
        }
    })
}

/// Refuses headers asking for what lessor does not do.
pub(crate) fn check_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    if headers.contains_key(WRAP_TTL_HEADER) {
        return Err(Refusal::bad_request(
            "header X-Vault-Wrap-TTL: lessor does not wrap responses; send the request without it",
        ));
    }
    Ok(())
}

/// The query string's pairs, percent-decoded (`+` is a space, as in a form).
pub(crate) fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
    let Some(query) = query else { return Ok(Vec::new()) };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode(&s.replace('+', " "))
                    .ok_or_else(|| Refusal::bad_request("the query string is not valid percent-encoded UTF-8"))
            };
            Ok((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Whether the query asks for a list (`list=true`), and the other pairs as data:
/// one value as a string, a repeated key as a list.
pub(crate) fn query_data(pairs: Vec<(String, String)>) -> Result<(bool, Value), Refusal> {
    let mut list = false;
    let mut data = Map::new();
    for (key, value) in pairs {
        if key == "list" {
            list = match value.as_str() {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                _ => return Err(Refusal::bad_request("query parameter \"list\" must be true or false")),
            };
            continue;
        }
        match data.get_mut(&key) {
            None => {
                data.insert(key, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => *first = Value::Array(vec![first.take(), Value::String(value)]),
        }
    }
    Ok((list, if data.is_empty() { Value::Null } else { Value::Object(data) }))
}

/// A write's body: a JSON object, or nothing.
pub(crate) fn body_data(body: &[u8]) -> Result<Value, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ (Value::Object(_) | Value::Null)) => Ok(value),
        Ok(_) => Err(Refusal::bad_request("the request body must be a JSON object, e.g. {\"ttl\": \"1h\"}")),
        Err(e) => Err(Refusal::bad_request(format!(
            "the request body is not valid JSON (line {}, column {}); send a JSON object",
            e.line(),
            e.column()
        ))),
    }
}

/// `%XX` decoding; `None` for a bad escape (as Go's `net/url`, which Vault
/// stands on, refuses one) or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let escapes_ok = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !escapes_ok {
        return None;
    }
    percent_encoding::percent_decode_str(text).decode_utf8().ok().map(|text| text.into_owned())
}

/// At most `max` bytes of `text`, cut at a character boundary (for messages).
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lists_and_repeats() {
        let pairs = query_pairs(Some("list=true&a=1&b=x%20y&b=z&c=d+e")).unwrap();
        let (list, data) = query_data(pairs).unwrap();
        assert!(list);
        assert_eq!(data, serde_json::json!({"a": "1", "b": ["x y", "z"], "c": "d e"}));
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert!(query_pairs(Some("a=%zz")).is_err());
        assert!(query_pairs(Some("a=%2")).is_err(), "an escape cut short");
        assert!(query_pairs(Some("a=%%41")).is_err(), "a % that escapes nothing");
        assert_eq!(query_data(query_pairs(Some("a=%25%41")).unwrap()).unwrap().1, serde_json::json!({"a": "%A"}));
        assert!(api_path("/v1/sys/%ff").is_err());
        assert_eq!(api_path("/v1/database/creds/a%2Fb").unwrap(), "database/creds/a/b");
        assert!(api_path("/v2/sys/health").is_err());
        assert!(api_path("/v1/database/creds/app%3Fttl=1").is_err(), "an encoded ? is refused");
    }

    #[test]
    fn bodies() {
        assert_eq!(body_data(b"").unwrap(), Value::Null);
        assert_eq!(body_data(b" \n").unwrap(), Value::Null);
        assert!(body_data(b"[1]").is_err());
        assert!(body_data(b"{").is_err());
        assert_eq!(body_data(b"{\"a\":1}").unwrap(), serde_json::json!({"a": 1}));
    }

    #[test]
    fn bearer_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer s.abc".parse().unwrap());
        assert_eq!(token(&headers), "s.abc");
        headers.insert(TOKEN_HEADER, "s.def".parse().unwrap());
        assert_eq!(token(&headers), "s.def");
    }
}
