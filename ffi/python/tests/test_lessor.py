"""End-to-end test of the Python binding against PostgreSQL.

Environment: LESSOR_LIBRARY (path of liblessor.so), LESSOR_PG_URL (connection URL
template with {{username}}/{{password}}), LESSOR_PG_USER, LESSOR_PG_PASSWORD,
LESSOR_PREFIX (username prefix). With LESSOR_TEST_HANDSHAKE=1 the test prints
"ISSUED <username>" / "REVOKED <username>" on stdout and waits for a line on
stdin after each, so a driver can check the database.
Run: python3 -m unittest discover -s ffi/python/tests -v
"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import lessor  # noqa: E402

CREATION = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';")


def handshake(line):
    if os.environ.get("LESSOR_TEST_HANDSHAKE") == "1":
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        sys.stdin.readline()


class ErrorsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "data")

    def tearDown(self):
        self.tmp.cleanup()

    def test_version(self):
        self.assertRegex(lessor.version(), r"^\d+\.\d+\.\d+")

    def test_open_uninitialized_is_not_found(self):
        with self.assertRaises(lessor.NotFound) as ctx:
            lessor.Engine.open(self.dir)
        self.assertEqual(ctx.exception.status, 3)
        self.assertIn("initialize", str(ctx.exception))

    def test_unknown_option_is_invalid(self):
        with self.assertRaises(lessor.InvalidArgument) as ctx:
            lessor.init(self.dir, {"bogus": 1})
        self.assertIn("bogus", str(ctx.exception))

    def test_bad_fsync_policy_is_invalid(self):
        with self.assertRaises(lessor.InvalidArgument) as ctx:
            lessor.init(self.dir, {"fsync": "sometimes"})
        self.assertIn('option fsync must be "always" or "never"', str(ctx.exception))

    def test_fsync_never_keeps_everything_after_a_clean_close(self):
        root = lessor.init(self.dir, {"fsync": "never"})
        with lessor.Engine.open(self.dir, {"fsync": "never"}) as engine:
            engine.request(root, "update", "sys/mounts/database", {"type": "database"})
        with lessor.Engine.open(self.dir) as engine:
            mount = engine.request(root, "read", "sys/mounts/database")
            self.assertEqual(mount["data"]["type"], "database")

    def test_bad_token_is_permission_denied(self):
        lessor.init(self.dir)
        with lessor.Engine.open(self.dir) as engine:
            with self.assertRaises(lessor.PermissionDenied) as ctx:
                engine.request("not-a-token", "read", "sys/mounts")
            self.assertEqual(ctx.exception.status, 2)
            self.assertIsInstance(ctx.exception, lessor.LessorError)
            with self.assertRaises(lessor.InvalidArgument):
                engine.request("t", "frobnicate", "sys/mounts")

    def test_second_open_is_busy(self):
        lessor.init(self.dir)
        with lessor.Engine.open(self.dir):
            with self.assertRaises(lessor.Busy):
                lessor.Engine.open(self.dir)


@unittest.skipUnless(os.environ.get("LESSOR_PG_URL"), "LESSOR_PG_URL not set")
class PostgresTest(unittest.TestCase):
    def test_issue_renew_revoke(self):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = os.path.join(tmp, "data")
            root = lessor.init(data_dir)
            self.assertTrue(root)
            with lessor.Engine.open(data_dir) as engine:
                engine.request(root, "update", "sys/mounts/database", {"type": "database"})
                engine.request(root, "update", "database/config/pg", {
                    "plugin_name": "postgresql-database-plugin",
                    "connection_url": os.environ["LESSOR_PG_URL"],
                    "username": os.environ["LESSOR_PG_USER"],
                    "password": os.environ["LESSOR_PG_PASSWORD"],
                    "allowed_roles": "*",
                    "username_template": os.environ.get("LESSOR_PREFIX", "py") + "-{{random 16}}",
                })
                engine.request(root, "update", "database/roles/app", {
                    "db_name": "pg", "default_ttl": "1h", "max_ttl": "24h",
                    "creation_statements": CREATION,
                })
                role = engine.request(root, "read", "database/roles/app")
                self.assertEqual(role["data"]["db_name"], "pg")

                cred = engine.issue(root, "database/creds/app")
                self.assertTrue(cred.username.startswith(os.environ.get("LESSOR_PREFIX", "py") + "-"))
                self.assertTrue(cred.password)
                self.assertGreater(cred.ttl_s, 0)
                handshake("ISSUED " + cred.username)

                ttl = engine.renew(root, cred.lease_id, 600)
                self.assertTrue(0 < ttl <= 600, ttl)
                with self.assertRaises(lessor.PermissionDenied):
                    engine.revoke("not-a-token", cred.lease_id)
                engine.revoke(root, cred.lease_id)
                handshake("REVOKED " + cred.username)
                with self.assertRaises(lessor.LessorError):
                    engine.issue(root, "database/creds/missing")


if __name__ == "__main__":
    unittest.main()
