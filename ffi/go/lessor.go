// Package lessor is the Go binding of liblessor (include/lessor.h) over cgo,
// standard library only.
//
// Builds against an installed liblessor found with pkg-config (`scripts/install
// PREFIX` writes PREFIX/lib/pkgconfig/lessor.pc; set PKG_CONFIG_PATH to that
// directory for a prefix pkg-config does not search, and LD_LIBRARY_PATH or an
// rpath for one the loader does not). An *Engine
// is safe for concurrent use by many goroutines; Close waits for the calls in
// flight, and every call after it returns ErrClosed.
//
// Arguments are checked before they reach C: a string containing a NUL byte (C
// would see only the part before it) and, inside Request's data, an integer
// outside int64 return an *ArgumentError naming the argument (it matches
// errors.Is(err, InvalidArgument)).
package lessor

/*
#cgo pkg-config: lessor
#include <stdlib.h>
#include "lessor.h"
*/
import "C"

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Status is a lessor_status code. It is an error, so errors.Is(err, lessor.NotFound) works.
type Status uint32

// The status codes of lessor.h.
const (
	OK               Status = 0
	InvalidArgument  Status = 1
	PermissionDenied Status = 2
	NotFound         Status = 3
	Database         Status = 4
	IO               Status = 5
	Corrupt          Status = 6
	Busy             Status = 7
	NullParameter    Status = 8
	InvalidHandle    Status = 9
	// AlreadyInitialized: Init on a directory that holds a log; Open it instead.
	AlreadyInitialized Status = 10
	Panic              Status = 100
)

func (s Status) Error() string { return C.GoString(C.lessor_status_str(C.uint32_t(s))) }

// Error is a failed call: its status and message. It wraps the Status.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Status.Error(), e.Message) }

// Unwrap returns the Status, for errors.Is.
func (e *Error) Unwrap() error { return e.Status }

// ErrClosed is returned by every call on an Engine after Close (or racing with
// it). errors.Is(err, ErrClosed) tests for it; it also matches InvalidHandle.
var ErrClosed error = &Error{Status: InvalidHandle, Message: "the engine is closed"}

// ArgumentError is an argument refused before calling C: a string containing a
// NUL byte, or an integer outside int64 inside Request's data. It matches
// errors.Is(err, InvalidArgument).
type ArgumentError struct {
	// Argument names the argument, e.g. "credsPath" or "data.config.default_lease_ttl".
	Argument string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("%s: %s %s", InvalidArgument.Error(), e.Argument, e.Reason)
}

// Unwrap returns InvalidArgument, for errors.Is.
func (e *ArgumentError) Unwrap() error { return InvalidArgument }

func check(status C.lessor_status, err *C.lessor_error) error {
	if status == C.LESSOR_OK {
		return nil
	}
	e := &Error{Status: Status(status), Message: "(no details)"}
	if err != nil {
		e.Message = C.GoString(C.lessor_error_message(err))
		C.lessor_error_free(err)
	}
	return e
}

// cstrings converts Go strings to C strings, refusing the first one that
// contains a NUL byte (err), and frees them all at the end.
type cstrings struct {
	ptrs []*C.char
	err  error
}

// add returns s as a C string, or nil (and sets c.err) if s contains a NUL
// byte or an earlier argument was refused.
func (c *cstrings) add(name, s string) *C.char {
	if c.err != nil {
		return nil
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		// The value itself is not shown: it may be a secret (a token).
		c.err = &ArgumentError{Argument: name, Reason: fmt.Sprintf("contains a NUL byte (at index %d), which C would take as the end of the string", i)}
		return nil
	}
	p := C.CString(s)
	c.ptrs = append(c.ptrs, p)
	return p
}

func (c *cstrings) free() {
	for _, p := range c.ptrs {
		C.free(unsafe.Pointer(p))
	}
}

// Version returns the version of the linked liblessor.
func Version() string { return C.GoString(C.lessor_version()) }

// Init initializes dataDir and returns the root token. optionsJSON may be "" for
// the defaults (see lessor_init in lessor.h).
func Init(dataDir, optionsJSON string) (string, error) {
	var cs cstrings
	defer cs.free()
	dir := cs.add("dataDir", dataDir)
	var opts *C.char
	if optionsJSON != "" {
		opts = cs.add("optionsJSON", optionsJSON)
	}
	if cs.err != nil {
		return "", cs.err
	}
	var token *C.char
	var err *C.lessor_error
	if e := check(C.lessor_init(dir, opts, &token, &err), err); e != nil {
		return "", e
	}
	defer C.lessor_string_free(token)
	return C.GoString(token), nil
}

// Engine is an open engine. Close it when done. Safe for concurrent use.
type Engine struct {
	// mu is held shared by every call for its duration and exclusively by Close
	// while it takes the handle, so Close waits for the calls in flight.
	mu     sync.RWMutex
	handle *C.lessor_engine // nil once closed
}

// Open opens an initialized data directory; optionsJSON may be "".
func Open(dataDir, optionsJSON string) (*Engine, error) {
	var cs cstrings
	defer cs.free()
	dir := cs.add("dataDir", dataDir)
	var opts *C.char
	if optionsJSON != "" {
		opts = cs.add("optionsJSON", optionsJSON)
	}
	if cs.err != nil {
		return nil, cs.err
	}
	var handle *C.lessor_engine
	var err *C.lessor_error
	if e := check(C.lessor_engine_open(dir, opts, &handle, &err), err); e != nil {
		return nil, e
	}
	engine := &Engine{handle: handle}
	runtime.SetFinalizer(engine, (*Engine).Close)
	return engine, nil
}

// Close waits for the calls in flight in other goroutines, then stops the
// expirer and releases the data directory (released when any Close returns).
// Every call after it (or racing with it) returns ErrClosed. Closing twice is a
// no-op. Do not call Close from inside
// a call on the same engine.
func (e *Engine) Close() error {
	e.mu.Lock() // waits for the calls in flight
	defer e.mu.Unlock()
	if e.handle != nil {
		// Freed with the lock held: a racing Close returns once the directory is released.
		C.lessor_engine_free(e.handle)
		e.handle = nil
		runtime.SetFinalizer(e, nil)
	}
	return nil
}

// acquire returns the handle with e.mu held shared (release with e.mu.RUnlock),
// or ErrClosed.
func (e *Engine) acquire() (*C.lessor_engine, error) {
	e.mu.RLock()
	if e.handle == nil {
		e.mu.RUnlock()
		return nil, ErrClosed
	}
	return e.handle, nil
}

// Credential is an issued database credential.
type Credential struct {
	LeaseID  string
	Username string
	Password string
	TTLS     int64
}

// Issue issues a credential from credsPath, e.g. "database/creds/app".
func (e *Engine) Issue(token, credsPath string) (Credential, error) {
	var cs cstrings
	defer cs.free()
	ctoken, cpath := cs.add("token", token), cs.add("credsPath", credsPath)
	if cs.err != nil {
		return Credential{}, cs.err
	}
	handle, herr := e.acquire()
	if herr != nil {
		return Credential{}, herr
	}
	defer e.mu.RUnlock()
	var cred *C.lessor_credential
	var err *C.lessor_error
	if ce := check(C.lessor_issue(handle, ctoken, cpath, &cred, &err), err); ce != nil {
		return Credential{}, ce
	}
	defer C.lessor_credential_free(cred)
	return Credential{
		LeaseID:  C.GoString(C.lessor_credential_lease_id(cred)),
		Username: C.GoString(C.lessor_credential_username(cred)),
		Password: C.GoString(C.lessor_credential_password(cred)),
		TTLS:     int64(C.lessor_credential_ttl_s(cred)),
	}, nil
}

// Renew renews a lease by incrementS seconds (0 = role default) and returns the
// seconds it now has left.
func (e *Engine) Renew(token, leaseID string, incrementS int64) (int64, error) {
	var cs cstrings
	defer cs.free()
	ctoken, clease := cs.add("token", token), cs.add("leaseID", leaseID)
	if cs.err != nil {
		return 0, cs.err
	}
	handle, herr := e.acquire()
	if herr != nil {
		return 0, herr
	}
	defer e.mu.RUnlock()
	var ttl C.int64_t
	var err *C.lessor_error
	if ce := check(C.lessor_renew(handle, ctoken, clease, C.int64_t(incrementS), &ttl, &err), err); ce != nil {
		return 0, ce
	}
	return int64(ttl), nil
}

// Revoke revokes a lease now.
func (e *Engine) Revoke(token, leaseID string) error {
	var cs cstrings
	defer cs.free()
	ctoken, clease := cs.add("token", token), cs.add("leaseID", leaseID)
	if cs.err != nil {
		return cs.err
	}
	handle, herr := e.acquire()
	if herr != nil {
		return herr
	}
	defer e.mu.RUnlock()
	var err *C.lessor_error
	return check(C.lessor_revoke(handle, ctoken, clease, &err), err)
}

// Request performs any request ("create", "read", "update", "delete", "list");
// data is marshalled to JSON (nil for none). An integer in data outside int64
// (a large uint64, say) is an *ArgumentError naming its place. Returns the
// response object.
func (e *Engine) Request(token, operation, path string, data any) (map[string]any, error) {
	var cs cstrings
	defer cs.free()
	ctoken, cop, cpath := cs.add("token", token), cs.add("operation", operation), cs.add("path", path)
	var body *C.char
	if data != nil && cs.err == nil {
		raw, jerr := json.Marshal(data)
		if jerr != nil {
			return nil, &Error{Status: InvalidArgument, Message: jerr.Error()}
		}
		if aerr := checkInts(raw, "data"); aerr != nil {
			return nil, aerr
		}
		body = cs.add("data", string(raw))
	}
	if cs.err != nil {
		return nil, cs.err
	}
	handle, herr := e.acquire()
	if herr != nil {
		return nil, herr
	}
	defer e.mu.RUnlock()
	var out *C.char
	var err *C.lessor_error
	if ce := check(C.lessor_request(handle, ctoken, cop, cpath, body, &out, &err), err); ce != nil {
		return nil, ce
	}
	defer C.lessor_string_free(out)
	var response map[string]any
	if jerr := json.Unmarshal([]byte(C.GoString(out)), &response); jerr != nil {
		return nil, &Error{Status: Corrupt, Message: jerr.Error()}
	}
	return response, nil
}

// checkInts refuses an integer outside int64 anywhere in the JSON text raw
// (name is the argument it came from): the library would not read it as the
// integer it was.
func checkInts(raw []byte, name string) error {
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return &Error{Status: InvalidArgument, Message: err.Error()}
	}
	return walkInts(value, name)
}

func walkInts(value any, place string) error {
	switch v := value.(type) {
	case json.Number:
		text := v.String()
		if strings.ContainsAny(text, ".eE") {
			return nil // not an integer literal
		}
		if _, err := strconv.ParseInt(text, 10, 64); err != nil {
			return &ArgumentError{Argument: place, Reason: fmt.Sprintf("is %s, outside the range of int64", text)}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			if err := walkInts(v[key], place+"."+key); err != nil {
				return err
			}
		}
	case []any:
		for i, item := range v {
			if err := walkInts(item, fmt.Sprintf("%s[%d]", place, i)); err != nil {
				return err
			}
		}
	}
	return nil
}
