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
import threading
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

    def test_second_init_says_already_initialized(self):
        lessor.init(self.dir)
        with self.assertRaises(lessor.AlreadyInitialized) as ctx:
            lessor.init(self.dir)
        self.assertEqual(ctx.exception.status, 10)
        self.assertIn("already initialized", str(ctx.exception))

    def test_second_open_is_busy(self):
        lessor.init(self.dir)
        with lessor.Engine.open(self.dir):
            with self.assertRaises(lessor.Busy):
                lessor.Engine.open(self.dir)


class CloseUnderCallsTest(unittest.TestCase):
    """close() while other threads are inside calls: it waits for them, and every
    call either succeeds or raises EngineClosed (issue 14, item 6)."""

    THREADS = 4
    ROUNDS = 30

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "data")
        self.root = lessor.init(self.dir, {"fsync": "never"})

    def tearDown(self):
        self.tmp.cleanup()

    def test_close_waits_for_calls_in_flight_and_later_calls_raise_engine_closed(self):
        for round_ in range(self.ROUNDS):
            engine = lessor.Engine.open(self.dir, {"fsync": "never"})
            started = threading.Barrier(self.THREADS + 1)
            unexpected = []
            closed_seen = []

            def worker():
                first = True
                while True:
                    try:
                        engine.request(self.root, "read", "sys/mounts")
                    except lessor.EngineClosed as e:
                        closed_seen.append(e)
                        break
                    except BaseException as e:  # noqa: B902 - any other outcome is the bug
                        unexpected.append(repr(e))
                        break
                    finally:
                        if first:
                            first = False
                            started.wait()

            threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.THREADS)]
            for t in threads:
                t.start()
            started.wait()  # every thread has made one call; most are in the next one
            engine.close()
            for t in threads:
                t.join(120)  # a generous hang detector, not a timing assertion
                self.assertFalse(t.is_alive(), "round %d: a thread hung after close()" % round_)
            self.assertEqual(unexpected, [], "round %d" % round_)
            self.assertEqual(len(closed_seen), self.THREADS, "round %d" % round_)

    def test_engine_closed_is_distinct_and_close_is_idempotent(self):
        engine = lessor.Engine.open(self.dir)
        engine.close()
        engine.close()
        for call in (lambda: engine.request(self.root, "read", "sys/mounts"),
                     lambda: engine.issue(self.root, "database/creds/app"),
                     lambda: engine.renew(self.root, "database/creds/app/x", 60),
                     lambda: engine.revoke(self.root, "database/creds/app/x")):
            with self.assertRaises(lessor.EngineClosed) as ctx:
                call()
            self.assertIsInstance(ctx.exception, lessor.LessorError)
            self.assertIsInstance(ctx.exception, lessor.InvalidHandle)
            self.assertEqual(ctx.exception.status, lessor.LESSOR_INVALID_HANDLE)
            self.assertIn("closed", str(ctx.exception))
        with engine:
            pass  # leaving a closed engine's context is harmless too
        # The directory was released: it opens again.
        with lessor.Engine.open(self.dir) as again:
            again.request(self.root, "read", "sys/mounts")


class ArgumentCheckTest(unittest.TestCase):
    """A string with a NUL byte and an integer outside int64 are refused before
    the C call, naming the argument, instead of being truncated or wrapped
    (issue 14, item 14)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "data")
        self.root = lessor.init(self.dir, {"fsync": "never"})
        self.engine = lessor.Engine.open(self.dir, {"fsync": "never"})

    def tearDown(self):
        self.engine.close()
        self.tmp.cleanup()

    def assertRefused(self, argument, call):
        with self.assertRaises(lessor.ArgumentError) as ctx:
            call()
        self.assertEqual(ctx.exception.argument, argument)
        self.assertIn(argument, str(ctx.exception))
        self.assertIsInstance(ctx.exception, lessor.InvalidArgument)
        self.assertIsInstance(ctx.exception, ValueError)
        self.assertEqual(ctx.exception.status, 1)
        return ctx.exception

    def mounts(self):
        return self.engine.request(self.root, "read", "sys/mounts")["data"]

    def test_nul_in_a_string_is_refused_not_truncated(self):
        e = self.engine
        error = self.assertRefused("path", lambda: e.request(
            self.root, "update", "sys/mounts/database\x00junk", {"type": "database"}))
        self.assertIn("NUL", str(error))
        self.assertNotIn("database/", self.mounts(), "the truncated path was not used")
        error = self.assertRefused("token", lambda: e.request(self.root + "\x00junk", "read", "sys/mounts"))
        self.assertNotIn(self.root, str(error), "the message never shows a token")
        self.assertRefused("operation", lambda: e.request(self.root, "read\x00x", "sys/mounts"))
        self.assertRefused("creds_path", lambda: e.issue(self.root, "database/creds/ro\x00x"))
        self.assertRefused("token", lambda: e.issue(self.root + "\x00", "database/creds/ro"))
        self.assertRefused("lease_id", lambda: e.renew(self.root, "database/creds/ro/a\x00b", 60))
        self.assertRefused("lease_id", lambda: e.revoke(self.root, "database/creds/ro/a\x00b"))
        self.assertRefused("data_dir", lambda: lessor.init(self.dir + "\x00x"))
        self.assertRefused("data_dir", lambda: lessor.Engine.open(self.dir + "\x00x"))
        self.assertRefused("options", lambda: lessor.Engine.open(self.dir, '{"fsync": "never"}\x00junk'))

    def test_integer_outside_int64_is_refused_not_wrapped(self):
        e = self.engine
        lease = "database/creds/ro/abc"
        error = self.assertRefused("increment_s", lambda: e.renew(self.root, lease, 2**64 + 600))
        self.assertIn(str(2**64 + 600), str(error))
        self.assertRefused("increment_s", lambda: e.renew(self.root, lease, 2**63))
        self.assertRefused("increment_s", lambda: e.renew(self.root, lease, -2**63 - 1))
        with self.assertRaises(TypeError):
            e.renew(self.root, lease, 1.5)
        # In range, a negative increment reaches the library, which refuses it.
        with self.assertRaises(lessor.InvalidArgument) as ctx:
            e.renew(self.root, lease, -1)
        self.assertNotIsInstance(ctx.exception, lessor.ArgumentError)
        # Integers inside request data and options.
        self.assertRefused('data["config"]["default_lease_ttl"]', lambda: e.request(
            self.root, "update", "sys/mounts/database",
            {"type": "database", "config": {"default_lease_ttl": 2**64 + 60}}))
        self.assertRefused('data["policies"][1]', lambda: e.request(
            self.root, "update", "auth/token/create", {"policies": [1, -2**63 - 1]}))
        self.assertNotIn("database/", self.mounts())
        self.assertRefused('options["segment_bytes_max"]',
                           lambda: lessor.init(self.dir + "2", {"segment_bytes_max": 2**64 + 1024}))
        # The edges of int64 pass through.
        e.request(self.root, "update", "sys/mounts/database",
                  {"type": "database", "config": {"default_lease_ttl": 60}, "description": "x"})
        with self.assertRaises(lessor.LessorError) as ctx:
            e.renew(self.root, lease, 2**63 - 1)
        self.assertNotIsInstance(ctx.exception, lessor.ArgumentError)


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
