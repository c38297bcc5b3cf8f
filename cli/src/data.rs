//! Request data from the command line, as `vault write` takes it: `key=value`
//! pairs, `key=@file` (the file's contents), `key=-` (stdin), or a single `@file.json`
//! / `-` giving the whole JSON object.

use std::io::Read;

use serde_json::{Map, Value};

/// Largest file or stdin read as data: policies and statements are small (I7).
const DATA_BYTES_MAX: u64 = 1 << 20;

/// Builds the JSON object for `args`. `stdin` is read at most once.
pub fn parse(args: &[String], stdin: &mut dyn Read) -> Result<Value, String> {
    if let [only] = args {
        if only == "-" {
            return object_from_json(&read_limited(stdin, "stdin")?, "stdin");
        }
        if let Some(file) = only.strip_prefix('@') {
            return object_from_json(&read_file(file)?, file);
        }
    }
    let mut map = Map::new();
    let mut stdin_used = false;
    for arg in args {
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(format!(
                "data \"{arg}\" is not key=value: write each field as key=value, key=@file, or give one @file.json or -"
            ));
        };
        if key.is_empty() {
            return Err(format!("data \"{arg}\" has an empty key: write key=value"));
        }
        let value = if raw == "-" {
            if stdin_used {
                return Err(format!("{key}=-: stdin can be read only once"));
            }
            stdin_used = true;
            read_limited(stdin, "stdin")?
        } else if let Some(file) = raw.strip_prefix('@') {
            read_file(file)?
        } else {
            raw.to_string()
        };
        // Repeating a key builds a list, as Vault's CLI does (`-policy=a -policy=b`).
        match map.get_mut(key) {
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
            None => {
                map.insert(key.to_string(), Value::String(value));
            }
        }
    }
    Ok(Value::Object(map))
}

fn object_from_json(text: &str, source: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{source} must hold a JSON object, such as {{\"ttl\": \"1h\"}}")),
        Err(e) => Err(format!("{source} is not valid JSON: {e}")),
    }
}

fn read_limited(reader: &mut dyn Read, source: &str) -> Result<String, String> {
    let mut text = String::new();
    reader.take(DATA_BYTES_MAX + 1).read_to_string(&mut text).map_err(|e| format!("cannot read {source}: {e}"))?;
    if text.len() as u64 > DATA_BYTES_MAX {
        return Err(format!("{source} is larger than {DATA_BYTES_MAX} bytes"));
    }
    Ok(text)
}

pub fn read_stdin() -> Result<String, String> {
    read_limited(&mut std::io::stdin().lock(), "stdin")
}

pub fn read_file(path: &str) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    read_limited(&mut file, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(args: &[&str], stdin: &str) -> Result<Value, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &mut stdin.as_bytes())
    }

    #[test]
    fn pairs_files_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.sql");
        std::fs::write(&file, "DROP ROLE x;").unwrap();
        let at = format!("revocation_statements=@{}", file.display());
        let v = p(&["a=1", "b=x=y", &at, "c=-"], "from stdin").unwrap();
        assert_eq!(v, json!({"a": "1", "b": "x=y", "revocation_statements": "DROP ROLE x;", "c": "from stdin"}));
        assert_eq!(p(&["policies=a", "policies=b"], "").unwrap(), json!({"policies": ["a", "b"]}));
        assert_eq!(p(&["-"], "{\"ttl\": \"1h\"}").unwrap(), json!({"ttl": "1h"}));
    }

    #[test]
    fn bad_data_names_the_argument_and_the_fix() {
        let e = p(&["novalue"], "").unwrap_err();
        assert!(e.contains("\"novalue\"") && e.contains("key=value"), "{e}");
        assert!(p(&["=x"], "").unwrap_err().contains("empty key"));
        assert!(p(&["-"], "[1]").unwrap_err().contains("JSON object"));
        assert!(p(&["a=-", "b=-"], "x").unwrap_err().contains("only once"));
        assert!(p(&["a=@/nonexistent/file"], "").unwrap_err().contains("/nonexistent/file"));
    }
}
