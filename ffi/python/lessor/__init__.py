"""Python binding of liblessor (the C API in include/lessor.h) over ctypes.

The library is loaded from ``$LESSOR_LIBRARY``, else ``liblessor.so`` next to this
package, else by name from the system's search path. An ``Engine`` is safe to use
from several threads at once (the C library releases no Python objects and ctypes
releases the GIL during each call).
"""

import ctypes
import json
import os
import threading
from collections import namedtuple

__all__ = [
    "init", "Engine", "Credential", "LessorError", "InvalidArgument", "PermissionDenied",
    "NotFound", "DatabaseError", "IOError_", "Corrupt", "Busy", "NullParameter", "Panic",
    "version",
]

LESSOR_OK = 0


class LessorError(Exception):
    """A failed lessor call; ``status`` is the lessor_status number."""

    status = None

    def __init__(self, status, message):
        super().__init__("%s: %s" % (_status_name(status), message))
        self.status = status
        self.message = message


class InvalidArgument(LessorError):
    pass


class PermissionDenied(LessorError):
    pass


class NotFound(LessorError):
    pass


class DatabaseError(LessorError):
    pass


class IOError_(LessorError):
    pass


class Corrupt(LessorError):
    pass


class Busy(LessorError):
    pass


class NullParameter(LessorError):
    pass


class Panic(LessorError):
    pass


_CLASSES = {
    1: InvalidArgument, 2: PermissionDenied, 3: NotFound, 4: DatabaseError, 5: IOError_,
    6: Corrupt, 7: Busy, 8: NullParameter, 100: Panic,
}

Credential = namedtuple("Credential", ["lease_id", "username", "password", "ttl_s"])


class _Opaque(ctypes.Structure):
    pass


_P = ctypes.POINTER(_Opaque)
_lib = None
_lib_lock = threading.Lock()


def _library_path():
    explicit = os.environ.get("LESSOR_LIBRARY")
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("liblessor.so", "liblessor.dylib"):
        candidate = os.path.join(here, name)
        if os.path.exists(candidate):
            return candidate
    return "liblessor.so"


def _load():
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        lib = ctypes.CDLL(_library_path())
        c = ctypes
        sig = {
            "lessor_version": (c.c_char_p, []),
            "lessor_status_str": (c.c_char_p, [c.c_uint32]),
            "lessor_error_status": (c.c_uint32, [_P]),
            "lessor_error_message": (c.c_char_p, [_P]),
            "lessor_error_free": (None, [_P]),
            "lessor_string_free": (None, [c.c_void_p]),
            "lessor_init": (c.c_uint32, [c.c_char_p, c.c_char_p, c.POINTER(c.c_void_p), c.POINTER(_P)]),
            "lessor_engine_open": (c.c_uint32, [c.c_char_p, c.c_char_p, c.POINTER(_P), c.POINTER(_P)]),
            "lessor_engine_free": (None, [_P]),
            "lessor_issue": (c.c_uint32, [_P, c.c_char_p, c.c_char_p, c.POINTER(_P), c.POINTER(_P)]),
            "lessor_renew": (c.c_uint32, [_P, c.c_char_p, c.c_char_p, c.c_int64, c.POINTER(c.c_int64), c.POINTER(_P)]),
            "lessor_revoke": (c.c_uint32, [_P, c.c_char_p, c.c_char_p, c.POINTER(_P)]),
            "lessor_request": (c.c_uint32, [_P, c.c_char_p, c.c_char_p, c.c_char_p, c.c_char_p,
                                            c.POINTER(c.c_void_p), c.POINTER(_P)]),
            "lessor_credential_lease_id": (c.c_char_p, [_P]),
            "lessor_credential_username": (c.c_char_p, [_P]),
            "lessor_credential_password": (c.c_char_p, [_P]),
            "lessor_credential_ttl_s": (c.c_int64, [_P]),
            "lessor_credential_free": (None, [_P]),
        }
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _lib = lib
        return lib


def _status_name(status):
    try:
        return _load().lessor_status_str(status).decode()
    except OSError:
        return "LESSOR_STATUS_%d" % status


def _check(status, err):
    if status == LESSOR_OK:
        return
    lib = _load()
    if err:
        message = lib.lessor_error_message(err).decode("utf-8", "replace")
        lib.lessor_error_free(err)
    else:
        message = "(no details)"
    raise _CLASSES.get(status, LessorError)(status, message)


def _enc(value, name):
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("%s must be a str" % name)
    return value.encode("utf-8")


def _options(options):
    if options is None:
        return None
    if isinstance(options, str):
        return options.encode("utf-8")
    return json.dumps(options).encode("utf-8")


def _take_string(ptr):
    """Copies a lessor-owned char* and frees it."""
    lib = _load()
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.lessor_string_free(ptr)


def version():
    """The version of the loaded liblessor."""
    return _load().lessor_version().decode()


def init(data_dir, options=None):
    """Initializes ``data_dir`` and returns the root token (shown only once)."""
    lib = _load()
    token = ctypes.c_void_p()
    err = _P()
    _check(lib.lessor_init(_enc(os.fspath(data_dir), "data_dir"), _options(options),
                           ctypes.byref(token), ctypes.byref(err)), err)
    return _take_string(token)


class Engine:
    """An open engine; use as a context manager, or call ``close()``."""

    def __init__(self, handle):
        self._handle = handle

    @classmethod
    def open(cls, data_dir, options=None):
        lib = _load()
        handle = _P()
        err = _P()
        _check(lib.lessor_engine_open(_enc(os.fspath(data_dir), "data_dir"), _options(options),
                                      ctypes.byref(handle), ctypes.byref(err)), err)
        return cls(handle)

    def close(self):
        if self._handle:
            _load().lessor_engine_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _h(self):
        if not self._handle:
            raise ValueError("the engine is closed")
        return self._handle

    def request(self, token, operation, path, data=None):
        """Any request, in Vault's shapes; returns the response as a dict."""
        lib = _load()
        out = ctypes.c_void_p()
        err = _P()
        body = None if data is None else json.dumps(data).encode("utf-8")
        _check(lib.lessor_request(self._h(), _enc(token, "token"), _enc(operation, "operation"),
                                  _enc(path, "path"), body, ctypes.byref(out), ctypes.byref(err)), err)
        return json.loads(_take_string(out))

    def issue(self, token, creds_path):
        """Issues a credential from ``creds_path`` (e.g. "database/creds/app")."""
        lib = _load()
        cred = _P()
        err = _P()
        _check(lib.lessor_issue(self._h(), _enc(token, "token"), _enc(creds_path, "creds_path"),
                                ctypes.byref(cred), ctypes.byref(err)), err)
        try:
            return Credential(
                lease_id=lib.lessor_credential_lease_id(cred).decode(),
                username=lib.lessor_credential_username(cred).decode(),
                password=lib.lessor_credential_password(cred).decode(),
                ttl_s=lib.lessor_credential_ttl_s(cred),
            )
        finally:
            lib.lessor_credential_free(cred)

    def renew(self, token, lease_id, increment_s=0):
        """Renews a lease; returns the seconds it now has left."""
        lib = _load()
        ttl = ctypes.c_int64()
        err = _P()
        _check(lib.lessor_renew(self._h(), _enc(token, "token"), _enc(lease_id, "lease_id"),
                                int(increment_s), ctypes.byref(ttl), ctypes.byref(err)), err)
        return ttl.value

    def revoke(self, token, lease_id):
        """Revokes a lease now (drops its database user)."""
        lib = _load()
        err = _P()
        _check(lib.lessor_revoke(self._h(), _enc(token, "token"), _enc(lease_id, "lease_id"),
                                 ctypes.byref(err)), err)
