"""Python binding of liblessor (the C API in include/lessor.h) over ctypes.

The library is loaded from ``$LESSOR_LIBRARY``, else ``liblessor.so`` next to this
package (``pip install ./ffi/python`` builds it and puts it there), else by name
from the system's search path. An ``Engine`` is safe to use
from several threads at once (the C library releases no Python objects and ctypes
releases the GIL during each call); ``Engine.close()`` waits for the calls in
flight in other threads, and every call after it raises ``EngineClosed``.

Arguments are checked before they reach C: a string containing a NUL byte (C
would see only the part before it) and an integer outside int64 (ctypes would
wrap it), also inside ``data`` and ``options``, raise ``ArgumentError`` naming
the argument.
"""

import ctypes
import json
import operator
import os
import threading
from typing import Any, NamedTuple, Optional, Union

__all__ = [
    "init", "Engine", "Credential", "LessorError", "InvalidArgument", "ArgumentError",
    "PermissionDenied", "NotFound", "DatabaseError", "IOError_", "Corrupt", "Busy",
    "NullParameter", "InvalidHandle", "AlreadyInitialized", "EngineClosed", "Panic", "version",
]

LESSOR_OK = 0
LESSOR_INVALID_ARGUMENT = 1
LESSOR_INVALID_HANDLE = 9

_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1


class LessorError(Exception):
    """A failed lessor call; ``status`` is the lessor_status number."""

    status = None

    def __init__(self, status, message):
        super().__init__("%s: %s" % (_status_name(status), message))
        self.status = status
        self.message = message


class InvalidArgument(LessorError):
    pass


class ArgumentError(InvalidArgument, ValueError):
    """An argument refused by the binding before calling C: a string with a NUL
    byte, or an integer outside int64. ``argument`` names it (for a value inside
    ``data`` or ``options``, with its place, e.g. ``data["config"]["ttl"]``)."""

    def __init__(self, argument, reason):
        super().__init__(LESSOR_INVALID_ARGUMENT, "%s %s" % (argument, reason))
        self.argument = argument


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


class InvalidHandle(LessorError):
    """LESSOR_INVALID_HANDLE: the C library was given a handle that is not live."""
    pass


class EngineClosed(InvalidHandle, ValueError):
    """A call on an ``Engine`` after (or racing with) ``close()``. Also a
    ``ValueError``, as calls on a closed engine raised before."""

    def __init__(self, message="the engine is closed"):
        super().__init__(LESSOR_INVALID_HANDLE, message)


class AlreadyInitialized(LessorError):
    """LESSOR_ALREADY_INITIALIZED: ``init`` on a directory that holds a log; open it instead."""
    pass


class Panic(LessorError):
    pass


_CLASSES = {
    1: InvalidArgument, 2: PermissionDenied, 3: NotFound, 4: DatabaseError, 5: IOError_,
    6: Corrupt, 7: Busy, 8: NullParameter, 9: InvalidHandle, 10: AlreadyInitialized, 100: Panic,
}

class Credential(NamedTuple):
    """An issued credential: its lease, the database user and password, and the
    seconds it has to live."""

    lease_id: str
    username: str
    password: str
    ttl_s: int


#: ``options`` of ``init`` and ``Engine.open``: a dict, or a JSON string.
Options = Union[dict, str, None]


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
        path = _library_path()
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise OSError(
                f"cannot load liblessor ({path}): {e}. Install this package with `pip install ./ffi/python` "
                "from a lessor checkout (it builds the library into the package), or set LESSOR_LIBRARY to a "
                "liblessor.so (`cargo build -p lessor-ffi` makes target/debug/liblessor.so)"
            ) from None
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
    index = value.find("\x00")
    if index >= 0:
        # The value itself is not shown: it may be a secret (a token).
        raise ArgumentError(name, "contains a NUL byte (at index %d), which C would take as "
                            "the end of the string" % index)
    return value.encode("utf-8")


def _int64(value, name):
    """``value`` as an int in int64's range (ctypes would silently wrap others)."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (name, type(value).__name__)) from None
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ArgumentError(name, "is %d, outside the range of int64 [%d, %d]"
                            % (value, _INT64_MIN, _INT64_MAX))
    return value


def _check_json_ints(value, name):
    """Refuses an integer outside int64 anywhere inside ``value`` (a JSON value)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        _int64(value, name)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_ints(item, "%s[%s]" % (name, json.dumps(key) if isinstance(key, str) else key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json_ints(item, "%s[%d]" % (name, index))


def _json(value, name):
    """``value`` (JSON-serialisable) as C's JSON text, its integers checked."""
    _check_json_ints(value, name)
    return json.dumps(value).encode("utf-8")


def _options(options):
    """``options``: None, a JSON string, or a dict."""
    if options is None:
        return None
    if isinstance(options, str):
        return _enc(options, "options")
    return _json(options, "options")


def _take_string(ptr):
    """Copies a lessor-owned char* and frees it."""
    lib = _load()
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.lessor_string_free(ptr)


def version() -> str:
    """The version of the loaded liblessor."""
    return _load().lessor_version().decode()


def init(data_dir: Union[str, "os.PathLike[str]"], options: Options = None) -> str:
    """Initializes ``data_dir`` and returns the root token (shown only once)."""
    lib = _load()
    token = ctypes.c_void_p()
    err = _P()
    _check(lib.lessor_init(_enc(os.fspath(data_dir), "data_dir"), _options(options),
                           ctypes.byref(token), ctypes.byref(err)), err)
    return _take_string(token)


class _Call:
    """Holds an engine open for the duration of one call (see ``Engine.close``)."""

    __slots__ = ("_engine", "handle")

    def __init__(self, engine):
        self._engine = engine
        self.handle = None

    def __enter__(self):
        self.handle = self._engine._enter()
        return self.handle

    def __exit__(self, *exc):
        self._engine._leave()
        return False


class Engine:
    """An open engine; use as a context manager, or call ``close()``.

    Safe to share between threads. ``close()`` waits for the calls in flight in
    other threads; every call made after ``close()`` began raises
    ``EngineClosed``. Closing twice is a no-op. Do not call ``close()`` from
    inside a call on the same engine (a signal handler, say): it would wait for
    itself.
    """

    def __init__(self, handle):
        self._handle = handle
        self._cond = threading.Condition(threading.Lock())
        self._calls = 0  # calls in flight
        self._closing = False

    @classmethod
    def open(cls, data_dir: Union[str, "os.PathLike[str]"], options: Options = None) -> "Engine":
        lib = _load()
        handle = _P()
        err = _P()
        _check(lib.lessor_engine_open(_enc(os.fspath(data_dir), "data_dir"), _options(options),
                                      ctypes.byref(handle), ctypes.byref(err)), err)
        return cls(handle)

    def close(self) -> None:
        """Waits for the calls in flight, then frees the engine (releasing the
        data directory). Later calls raise ``EngineClosed``."""
        cond = getattr(self, "_cond", None)
        if cond is None:  # __init__ never ran to the end
            return
        with cond:
            if self._closing:
                # Closed, or being closed by another thread: wait until it is done.
                while self._handle is not None:
                    cond.wait()
                return
            self._closing = True
            while self._calls:
                cond.wait()
            handle = self._handle
        try:
            if handle:
                _load().lessor_engine_free(handle)
        finally:
            with cond:
                self._handle = None
                cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return self._closing

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _enter(self):
        with self._cond:
            if self._closing or not self._handle:
                raise EngineClosed()
            self._calls += 1
            return self._handle

    def _leave(self):
        with self._cond:
            self._calls -= 1
            if not self._calls:
                self._cond.notify_all()

    def request(self, token: str, operation: str, path: str, data: Optional[Any] = None) -> dict:
        """Any request, in Vault's shapes; returns the response as a dict."""
        lib = _load()
        out = ctypes.c_void_p()
        err = _P()
        args = (_enc(token, "token"), _enc(operation, "operation"), _enc(path, "path"))
        body = None if data is None else _json(data, "data")
        with _Call(self) as handle:
            status = lib.lessor_request(handle, *args, body, ctypes.byref(out), ctypes.byref(err))
        _check(status, err)
        return json.loads(_take_string(out))

    def issue(self, token: str, creds_path: str) -> Credential:
        """Issues a credential from ``creds_path`` (e.g. "database/creds/app")."""
        lib = _load()
        cred = _P()
        err = _P()
        args = (_enc(token, "token"), _enc(creds_path, "creds_path"))
        with _Call(self) as handle:
            status = lib.lessor_issue(handle, *args, ctypes.byref(cred), ctypes.byref(err))
        _check(status, err)
        try:
            return Credential(
                lease_id=lib.lessor_credential_lease_id(cred).decode(),
                username=lib.lessor_credential_username(cred).decode(),
                password=lib.lessor_credential_password(cred).decode(),
                ttl_s=lib.lessor_credential_ttl_s(cred),
            )
        finally:
            lib.lessor_credential_free(cred)

    def renew(self, token: str, lease_id: str, increment_s: int = 0) -> int:
        """Renews a lease; returns the seconds it now has left."""
        lib = _load()
        ttl = ctypes.c_int64()
        err = _P()
        args = (_enc(token, "token"), _enc(lease_id, "lease_id"), _int64(increment_s, "increment_s"))
        with _Call(self) as handle:
            status = lib.lessor_renew(handle, *args, ctypes.byref(ttl), ctypes.byref(err))
        _check(status, err)
        return ttl.value

    def revoke(self, token: str, lease_id: str) -> None:
        """Revokes a lease now (drops its database user)."""
        lib = _load()
        err = _P()
        args = (_enc(token, "token"), _enc(lease_id, "lease_id"))
        with _Call(self) as handle:
            status = lib.lessor_revoke(handle, *args, ctypes.byref(err))
        _check(status, err)
