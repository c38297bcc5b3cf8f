"""The bao walkthrough through hvac's own methods, against `lessor server -dev`.

Run by cli/tests/server_hvac.rs, one step at a time, so the Rust side can look
at PostgreSQL between steps:

    python server_hvac.py STEP '{"url": ..., "token": ..., ...}'

Each step prints one JSON object (what hvac returned, the status codes and the
exception class names) on stdout; the Rust test asserts on it. Any unexpected
exception fails the step with a traceback and exit 1.
"""

import json
import sys

import hvac
import hvac.exceptions

CREATION = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
]
REVOCATION = [
    'REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{name}}";',
    'DROP ROLE IF EXISTS "{{name}}";',
]
POLICY = 'path "database/creds/app-readonly" {\n  capabilities = ["read"]\n}\n'


def client(args, token=None):
    return hvac.Client(url=args["url"], token=token or args["token"])


def status_of(response):
    """hvac returns a dict for a JSON reply and the requests.Response otherwise."""
    return 200 if isinstance(response, dict) else response.status_code


def reply_of(response):
    """A JSON reply as it is, else the status of the empty one."""
    return response if isinstance(response, dict) else {"status": response.status_code}


def denied(call):
    """The exception class a call raises (hvac maps 403 to Forbidden)."""
    try:
        call()
    except hvac.exceptions.VaultError as e:
        return type(e).__name__
    return None


def issue(args):
    """is_authenticated, enable, configure, create_role, generate, renew."""
    c = client(args)
    out = {"authenticated": c.is_authenticated()}
    out["enable_status"] = status_of(c.sys.enable_secrets_engine("database"))
    out["mounts"] = sorted(c.sys.list_mounted_secrets_engines()["data"].keys())
    out["configure_status"] = status_of(
        c.secrets.database.configure(
            name="my-postgresql",
            plugin_name="postgresql-database-plugin",
            allowed_roles=["app-readonly"],
            connection_url=args["connection_url"],
            username=args["username"],
            password=args["password"],
        )
    )
    out["role_reply"] = reply_of(
        c.secrets.database.create_role(
            name="app-readonly",
            db_name="my-postgresql",
            creation_statements=CREATION,
            revocation_statements=REVOCATION,
            default_ttl="1h",
            max_ttl="24h",
        )
    )
    out["role"] = c.secrets.database.read_role("app-readonly")["data"]
    out["issued"] = c.secrets.database.generate_credentials("app-readonly")
    out["renewed"] = c.sys.renew_lease(out["issued"]["lease_id"], increment=7200)
    out["looked_up"] = c.sys.read_lease(out["issued"]["lease_id"])["data"]
    return out


def policy(args):
    """create_or_update_policy (legacy sys/policy), a token holding it, its reach."""
    c = client(args)
    out = {"policy_status": status_of(c.sys.create_or_update_policy("app-readonly", POLICY))}
    out["policy_read"] = c.sys.read_policy("app-readonly")["data"]
    out["policies"] = c.sys.list_policies()["data"]
    created = c.auth.token.create(policies=["app-readonly"], display_name="app-A")
    out["created"] = created["auth"]
    app = client(args, token=created["auth"]["client_token"])
    out["app_authenticated"] = app.is_authenticated()
    out["app_self"] = app.auth.token.lookup_self()["data"]
    out["app_issued"] = app.secrets.database.generate_credentials("app-readonly")
    out["denied_read_role"] = denied(lambda: app.secrets.database.read_role("app-readonly"))
    out["denied_configure"] = denied(
        lambda: app.secrets.database.configure(
            name="my-postgresql", plugin_name="postgresql-database-plugin", allowed_roles=["*"]
        )
    )
    out["denied_policy"] = denied(lambda: app.sys.create_or_update_policy("mine", POLICY))
    out["unknown_token"] = client(args, token="not-a-token").is_authenticated()
    return out


def revoke(args):
    """revoke_lease: hvac's default is a synchronous revoke, 204."""
    c = client(args)
    out = {"revoke_status": status_of(c.sys.revoke_lease(args["lease_id"]))}
    out["lookup_after"] = denied(lambda: c.sys.read_lease(args["lease_id"]))
    # Revoking it again: nothing to do, and a success (as Vault), so a retry
    # after a lost reply does not raise.
    out["revoke_again_status"] = status_of(c.sys.revoke_lease(args["lease_id"]))
    return out


def rotate(args):
    """rotate_root_credentials, credentials still issue; health and seal status."""
    c = client(args)
    out = {"rotate_status": status_of(c.secrets.database.rotate_root_credentials("my-postgresql"))}
    out["issued"] = c.secrets.database.generate_credentials("app-readonly")
    head = c.sys.read_health_status()
    out["health_head_status"] = head.status_code
    out["health_head_body"] = head.text
    out["health_get"] = c.sys.read_health_status(method="GET")
    out["seal_status"] = c.sys.read_seal_status()
    out["is_initialized"] = c.sys.is_initialized()
    out["is_sealed"] = c.sys.is_sealed()
    return out


STEPS = {"issue": issue, "policy": policy, "revoke": revoke, "rotate": rotate}

if __name__ == "__main__":
    step, raw = sys.argv[1], sys.argv[2]
    print(json.dumps(STEPS[step](json.loads(raw))))
