//! `sys/policy` and `sys/policies/acl`: write, read, list and delete ACL policies.

use serde_json::json;

use super::handler::{Ctx, Handled};
use super::input::Input;
use super::router::Route;
use super::{Operation, RequestError, Response};
use crate::auth::policy::{DEFAULT_POLICY, ROOT_POLICY, normalize_policy_name, parse_policy, validate_policy_name};
use crate::event::{PolicyDeleted, PolicyWritten};

pub(crate) fn handle(ctx: &Ctx<'_>, route: Route, mut input: Input) -> Result<Handled, RequestError> {
    let name = match route {
        Route::Policies => {
            input.finish()?;
            let mut names: Vec<String> = ctx.state.policies.keys().cloned().collect();
            names.push(ROOT_POLICY.to_string());
            names.sort();
            let data = json!({ "keys": names, "policies": names });
            return Ok(Handled { response: Response::with_json(data), ..Handled::default() });
        }
        Route::Policy(name) => normalize_policy_name(&name),
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
            let data = json!({ "name": name, "rules": rules, "policy": rules });
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
            let text = input.required_string("policy", "the policy text in HCL or JSON")?;
            input.finish()?;
            validate_policy_name(&name).map_err(|e| RequestError::invalid(e.to_string()))?;
            if name == ROOT_POLICY {
                return Err(RequestError::invalid("cannot update the \"root\" policy"));
            }
            parse_policy(&name, &text).map_err(|e| RequestError::invalid(format!("field \"policy\": {e}")))?;
            Ok(Handled { events: vec![PolicyWritten { name, text }.into()], ..Handled::default() })
        }
    }
}
