//! `sys/policy` and `sys/policies/acl`: write, read, list and delete ACL policies.

use serde_json::json;

use super::handler::{Ctx, Handled};
use super::input::Input;
use super::router::{PolicyApi, Route};
use super::{Operation, RequestError, Response};
use crate::auth::policy::{DEFAULT_POLICY, ROOT_POLICY, normalize_policy_name, parse_policy, validate_policy_name};
use crate::event::{PolicyDeleted, PolicyWritten};

pub(crate) fn handle(ctx: &Ctx<'_>, route: Route, mut input: Input) -> Result<Handled, RequestError> {
    let (name, api) = match route {
        Route::Policies(api) => {
            input.finish()?;
            let mut names: Vec<String> = ctx.state.policies.keys().cloned().collect();
            names.push(ROOT_POLICY.to_string());
            names.sort();
            // As Vault: the legacy path's list also answers `policies`.
            let data = match api {
                PolicyApi::Acl => json!({ "keys": names }),
                PolicyApi::Legacy => json!({ "keys": names, "policies": names }),
            };
            return Ok(Handled { response: Response::with_json(data), ..Handled::default() });
        }
        Route::Policy(name, api) => (normalize_policy_name(&name), api),
        other => unreachable!("sys/policy handler got {other:?}"),
    };
    match ctx.operation {
        Operation::Read => {
            input.finish()?;
            let rules = if name == ROOT_POLICY {
                String::new()
            } else {
                ctx.state.policies.get(&name).cloned().ok_or_else(|| {
                    RequestError::not_found(format!("no policy named \"{name}\"; list them with `sys/policy`"))
                })?
            };
            // As Vault: the text is `rules` on the legacy path, `policy` on the new one.
            let data = match api {
                PolicyApi::Acl => json!({ "name": name, "policy": rules }),
                PolicyApi::Legacy => json!({ "name": name, "rules": rules }),
            };
            Ok(Handled { response: Response::with_json(data), ..Handled::default() })
        }
        Operation::Delete => {
            input.finish()?;
            if name == ROOT_POLICY || name == DEFAULT_POLICY {
                return Err(RequestError::invalid(format!("cannot delete the \"{name}\" policy")));
            }
            let events =
                if ctx.state.policies.contains_key(&name) { vec![PolicyDeleted { name }.into()] } else { vec![] };
            Ok(Handled { events, ..Handled::default() })
        }
        _ => {
            let mut warnings = None;
            let mut text = input.string("policy")?.unwrap_or_default();
            // As Vault: the legacy path still takes the text as `rules`, with a warning.
            if api == PolicyApi::Legacy {
                let rules = input.string("rules")?.unwrap_or_default();
                if text.is_empty() && !rules.is_empty() {
                    text = rules;
                    warnings = Some(vec!["'rules' is deprecated, please use 'policy' instead".to_string()]);
                }
            }
            // An unknown field first: a misspelt `policy`, or `rules` on the new path.
            input.finish()?;
            if text.is_empty() {
                return Err(RequestError::invalid("field \"policy\": is required: the policy text in HCL or JSON"));
            }
            validate_policy_name(&name).map_err(|e| RequestError::invalid(e.to_string()))?;
            if name == ROOT_POLICY {
                return Err(RequestError::invalid("cannot update the \"root\" policy"));
            }
            parse_policy(&name, &text).map_err(|e| RequestError::invalid(format!("field \"policy\": {e}")))?;
            let response = Response { warnings, ..Response::default() };
            Ok(Handled { events: vec![PolicyWritten { name, text }.into()], response, login: None })
        }
    }
}
