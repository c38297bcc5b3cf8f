// Package lessor is the Go binding of liblessor (include/lessor.h) over cgo,
// standard library only.
//
// Link against liblessor: set CGO_LDFLAGS="-L<dir of liblessor.so>" (and an rpath
// or LD_LIBRARY_PATH at run time) unless it is installed system-wide. An *Engine
// is safe for concurrent use by many goroutines.
package lessor

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -llessor
#include <stdlib.h>
#include "lessor.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime"
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
	Panic            Status = 100
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

type cstrings []*C.char

func (c *cstrings) add(s string) *C.char {
	p := C.CString(s)
	*c = append(*c, p)
	return p
}

func (c cstrings) free() {
	for _, p := range c {
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
	var opts *C.char
	if optionsJSON != "" {
		opts = cs.add(optionsJSON)
	}
	var token *C.char
	var err *C.lessor_error
	if e := check(C.lessor_init(cs.add(dataDir), opts, &token, &err), err); e != nil {
		return "", e
	}
	defer C.lessor_string_free(token)
	return C.GoString(token), nil
}

// Engine is an open engine. Close it when done.
type Engine struct {
	handle *C.lessor_engine
}

// Open opens an initialized data directory; optionsJSON may be "".
func Open(dataDir, optionsJSON string) (*Engine, error) {
	var cs cstrings
	defer cs.free()
	var opts *C.char
	if optionsJSON != "" {
		opts = cs.add(optionsJSON)
	}
	var handle *C.lessor_engine
	var err *C.lessor_error
	if e := check(C.lessor_engine_open(cs.add(dataDir), opts, &handle, &err), err); e != nil {
		return nil, e
	}
	engine := &Engine{handle: handle}
	runtime.SetFinalizer(engine, (*Engine).Close)
	return engine, nil
}

// Close stops the expirer and releases the data directory. It must not race
// with other calls on the engine. Closing twice is a no-op.
func (e *Engine) Close() error {
	if e.handle != nil {
		C.lessor_engine_free(e.handle)
		e.handle = nil
	}
	return nil
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
	var cred *C.lessor_credential
	var err *C.lessor_error
	if ce := check(C.lessor_issue(e.handle, cs.add(token), cs.add(credsPath), &cred, &err), err); ce != nil {
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
	var ttl C.int64_t
	var err *C.lessor_error
	if ce := check(C.lessor_renew(e.handle, cs.add(token), cs.add(leaseID), C.int64_t(incrementS), &ttl, &err), err); ce != nil {
		return 0, ce
	}
	return int64(ttl), nil
}

// Revoke revokes a lease now.
func (e *Engine) Revoke(token, leaseID string) error {
	var cs cstrings
	defer cs.free()
	var err *C.lessor_error
	return check(C.lessor_revoke(e.handle, cs.add(token), cs.add(leaseID), &err), err)
}

// Request performs any request ("create", "read", "update", "delete", "list");
// data is marshalled to JSON (nil for none). Returns the response object.
func (e *Engine) Request(token, operation, path string, data any) (map[string]any, error) {
	var cs cstrings
	defer cs.free()
	var body *C.char
	if data != nil {
		raw, jerr := json.Marshal(data)
		if jerr != nil {
			return nil, &Error{Status: InvalidArgument, Message: jerr.Error()}
		}
		body = cs.add(string(raw))
	}
	var out *C.char
	var err *C.lessor_error
	if ce := check(C.lessor_request(e.handle, cs.add(token), cs.add(operation), cs.add(path), body, &out, &err), err); ce != nil {
		return nil, ce
	}
	defer C.lessor_string_free(out)
	var response map[string]any
	if jerr := json.Unmarshal([]byte(C.GoString(out)), &response); jerr != nil {
		return nil, &Error{Status: Corrupt, Message: jerr.Error()}
	}
	return response, nil
}
