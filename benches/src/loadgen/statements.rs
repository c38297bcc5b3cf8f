//! Statement sets: the article's and the membership role's statements, or a Vault
//! role's JSON file, and the names of the roles they create.

use std::path::Path;

use lessor_engine::text::statements::normalize_statement_list;
use serde_json::Value;

/// The article's creation statements (reference/seed-article.txt).
pub const ARTICLE_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL \
     '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; ALTER DEFAULT PRIVILEGES IN \
     SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
/// The article's revocation, with the default-privileges REVOKE it lacks: without
/// it DROP ROLE fails ("some objects depend on it"), which lessor warns about.
pub const ARTICLE_REVOCATION: &str = "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM \
     \"{{name}}\"; REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE IF EXISTS \
     \"{{name}}\";";
/// Membership in a pre-created group role instead of per-user GRANTs.
pub const MEMBERSHIP_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL \
     '{{expiration}}' IN ROLE readers;";
pub const MEMBERSHIP_REVOCATION: &str = "DROP ROLE IF EXISTS \"{{name}}\";";
/// The group role the membership set joins; created when missing.
pub const READERS_ROLE: &str = "readers";
/// Prefix of every role the load generator creates: `v-<run>-r-…` (raw) and
/// `v-<run>-l-…` (lessor), `<run>` random per run.
pub const ROLE_PREFIX: &str = "v-";

/// A role to measure: its name (the set's), statements, and setup SQL.
#[derive(Clone, Debug)]
pub(crate) struct StatementSet {
    pub(crate) name: String,
    pub(crate) creation: Vec<String>,
    pub(crate) revocation: Vec<String>,
    pub(crate) setup: Vec<String>,
}

impl StatementSet {
    /// The body of `<mount>/roles/<name>` every system measured gets (on the
    /// connection `bench`), so they all run the same role.
    pub(crate) fn role_body(&self) -> serde_json::Value {
        serde_json::json!({
            "db_name": "bench",
            "creation_statements": self.creation,
            "revocation_statements": self.revocation,
            "default_ttl": "1h",
            "max_ttl": "24h",
        })
    }
}

pub(crate) fn statement_set(spec: &str, tables: usize) -> Result<StatementSet, String> {
    let split = |text: &str, what: &str| {
        normalize_statement_list(&[text.to_string()]).map_err(|e| format!("{spec}: {what}: {e}"))
    };
    let table_setup = (1..=tables)
        .map(|i| format!("CREATE TABLE IF NOT EXISTS public.lessor_bench_t{i} (id int PRIMARY KEY, v text)"))
        .collect::<Vec<_>>();
    match spec {
        "article" => Ok(StatementSet {
            name: "article".into(),
            creation: split(ARTICLE_CREATION, "creation")?,
            revocation: split(ARTICLE_REVOCATION, "revocation")?,
            setup: table_setup,
        }),
        "membership" => Ok(StatementSet {
            name: "membership".into(),
            creation: split(MEMBERSHIP_CREATION, "creation")?,
            revocation: split(MEMBERSHIP_REVOCATION, "revocation")?,
            setup: table_setup,
        }),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("--statements {path}: not `article` or `membership`, and cannot read it as a file: {e}")
            })?;
            let value: Value = serde_json::from_str(&text).map_err(|e| {
                format!("--statements {path}: expected a JSON object with \"creation_statements\": {e}")
            })?;
            let list = |field: &str| -> Result<Vec<String>, String> {
                let items: Vec<String> = match value.get(field) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| format!("{path}: \"{field}\" must hold strings"))?,
                    Some(_) => return Err(format!("{path}: \"{field}\" must be a string or a list of strings")),
                };
                normalize_statement_list(&items).map_err(|e| format!("{path}: \"{field}\": {e}"))
            };
            let creation = list("creation_statements")?;
            if creation.is_empty() {
                return Err(format!("{path}: \"creation_statements\" is required"));
            }
            let name = Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
                .filter(|s: &String| !s.is_empty())
                .unwrap_or_else(|| "custom".to_string());
            Ok(StatementSet {
                name,
                creation,
                revocation: list("revocation_statements")?,
                setup: list("setup_statements")?,
            })
        }
    }
}
