package lessor

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const creation = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`

var stdin = bufio.NewReader(os.Stdin)

// handshake prints line and waits for a line on stdin when LESSOR_TEST_HANDSHAKE=1,
// so a driver can check the database between steps.
func handshake(line string) {
	if os.Getenv("LESSOR_TEST_HANDSHAKE") == "1" {
		fmt.Println(line)
		_, _ = stdin.ReadString('\n')
	}
}

func TestErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Open(dir, ""); !errors.Is(err, NotFound) {
		t.Fatalf("open before init: %v", err)
	}
	if _, err := Init(dir, `{"bogus": 1}`); !errors.Is(err, InvalidArgument) || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown option: %v", err)
	}
	if _, err := Init(dir, ""); err != nil {
		t.Fatal(err)
	}
	engine, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	_, err = engine.Request("not-a-token", "read", "sys/mounts", nil)
	var lerr *Error
	if !errors.As(err, &lerr) || lerr.Status != PermissionDenied || lerr.Message == "" {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := engine.Issue("not-a-token", "database/creds/x"); !errors.Is(err, PermissionDenied) {
		t.Fatalf("bad token issue: %v", err)
	}
	if _, err := Open(dir, ""); !errors.Is(err, Busy) {
		t.Fatalf("second open: %v", err)
	}
	if _, err := Init(dir, ""); !errors.Is(err, AlreadyInitialized) || !strings.Contains(err.Error(), "already initialized") {
		t.Fatalf("second init: %v", err)
	}
}

func TestPostgres(t *testing.T) {
	url := os.Getenv("LESSOR_PG_URL")
	if url == "" {
		t.Skip("LESSOR_PG_URL not set")
	}
	prefix := os.Getenv("LESSOR_PREFIX")
	dir := filepath.Join(t.TempDir(), "data")
	root, err := Init(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	engine, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	must := func(_ map[string]any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(engine.Request(root, "update", "sys/mounts/database", map[string]any{"type": "database"}))
	must(engine.Request(root, "update", "database/config/pg", map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    url,
		"username":          os.Getenv("LESSOR_PG_USER"),
		"password":          os.Getenv("LESSOR_PG_PASSWORD"),
		"allowed_roles":     "*",
		"username_template": prefix + "-{{random 16}}",
	}))
	must(engine.Request(root, "update", "database/roles/app", map[string]any{
		"db_name": "pg", "default_ttl": "1h", "max_ttl": "24h", "creation_statements": creation,
	}))
	cred, err := engine.Issue(root, "database/creds/app")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cred.Username, prefix+"-") || cred.Password == "" || cred.TTLS <= 0 {
		t.Fatalf("credential: %+v", cred.Username)
	}
	handshake("ISSUED " + cred.Username)
	ttl, err := engine.Renew(root, cred.LeaseID, 600)
	if err != nil || ttl <= 0 || ttl > 600 {
		t.Fatalf("renew: %d %v", ttl, err)
	}
	if err := engine.Revoke(root, cred.LeaseID); err != nil {
		t.Fatal(err)
	}
	handshake("REVOKED " + cred.Username)

	// 8 goroutines issuing and revoking through one engine.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := engine.Issue(root, "database/creds/app")
			if err == nil {
				err = engine.Revoke(root, c.LeaseID)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// openFresh initializes a data directory (fsync never: fast) and opens it.
func openFresh(t *testing.T) (dir, root string, engine *Engine) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	root, err := Init(dir, `{"fsync": "never"}`)
	if err != nil {
		t.Fatal(err)
	}
	engine, err = Open(dir, `{"fsync": "never"}`)
	if err != nil {
		t.Fatal(err)
	}
	return dir, root, engine
}

// Close while other goroutines are inside calls waits for them; every call
// either succeeds or returns ErrClosed; nothing panics or hangs (issue 14, item 6).
func TestCloseUnderCalls(t *testing.T) {
	const goroutines, rounds = 4, 30
	dir, root, engine := openFresh(t)
	engine.Close()
	for round := 0; round < rounds; round++ {
		engine, err := Open(dir, `{"fsync": "never"}`)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var started, done sync.WaitGroup
		started.Add(goroutines)
		done.Add(goroutines)
		unexpected := make(chan error, goroutines)
		for i := 0; i < goroutines; i++ {
			go func() {
				defer done.Done()
				for calls := 0; ; calls++ {
					_, err := engine.Request(root, "read", "sys/mounts", nil)
					if calls == 0 {
						started.Done()
					}
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						unexpected <- err
						return
					}
				}
			}()
		}
		started.Wait() // every goroutine has made one call; most are in the next one
		if err := engine.Close(); err != nil {
			t.Fatal(err)
		}
		finished := make(chan struct{})
		go func() { done.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(2 * time.Minute): // a generous hang detector, not a timing assertion
			t.Fatalf("round %d: a goroutine hung after Close", round)
		}
		close(unexpected)
		for err := range unexpected {
			t.Fatalf("round %d: a call racing Close returned %v", round, err)
		}
	}
}

func TestClosedEngine(t *testing.T) {
	dir, root, engine := openFresh(t)
	if err := engine.Close(); err != nil {
		t.Fatal(err)
	}
	if err := engine.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err1 := engine.Request(root, "read", "sys/mounts", nil)
	_, err2 := engine.Issue(root, "database/creds/app")
	_, err3 := engine.Renew(root, "database/creds/app/x", 60)
	err4 := engine.Revoke(root, "database/creds/app/x")
	for i, err := range []error{err1, err2, err3, err4} {
		if !errors.Is(err, ErrClosed) || !errors.Is(err, InvalidHandle) || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("call %d on a closed engine: %v", i, err)
		}
	}
	// The directory was released.
	again, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.Request(root, "read", "sys/mounts", nil); err != nil {
		t.Fatal(err)
	}
}

// expectRefused checks that err is an *ArgumentError naming argument.
func expectRefused(t *testing.T, argument string, err error) *ArgumentError {
	t.Helper()
	var aerr *ArgumentError
	if !errors.As(err, &aerr) || aerr.Argument != argument || !errors.Is(err, InvalidArgument) ||
		!strings.Contains(err.Error(), argument) {
		t.Fatalf("want an ArgumentError naming %s, got %v", argument, err)
	}
	return aerr
}

func mounts(t *testing.T, engine *Engine, root string) map[string]any {
	t.Helper()
	response, err := engine.Request(root, "read", "sys/mounts", nil)
	if err != nil {
		t.Fatal(err)
	}
	return response["data"].(map[string]any)
}

// A string with a NUL byte is refused, naming the argument, instead of being
// truncated by C (issue 14, item 14).
func TestNulInAStringIsRefused(t *testing.T) {
	dir, root, engine := openFresh(t)
	defer engine.Close()
	_, err := engine.Request(root, "update", "sys/mounts/database\x00junk", map[string]any{"type": "database"})
	if !strings.Contains(expectRefused(t, "path", err).Reason, "NUL") {
		t.Fatalf("reason: %v", err)
	}
	if _, ok := mounts(t, engine, root)["database/"]; ok {
		t.Fatal("the truncated path was used")
	}
	_, err = engine.Request(root+"\x00junk", "read", "sys/mounts", nil)
	expectRefused(t, "token", err)
	if strings.Contains(err.Error(), root) {
		t.Fatalf("the message shows the token: %v", err)
	}
	_, err = engine.Request(root, "read\x00x", "sys/mounts", nil)
	expectRefused(t, "operation", err)
	_, err = engine.Issue(root, "database/creds/ro\x00x")
	expectRefused(t, "credsPath", err)
	_, err = engine.Renew(root, "database/creds/ro/a\x00b", 60)
	expectRefused(t, "leaseID", err)
	expectRefused(t, "leaseID", engine.Revoke(root, "database/creds/ro/a\x00b"))
	_, err = Init(dir+"\x00x", "")
	expectRefused(t, "dataDir", err)
	_, err = Open(dir+"\x00x", "")
	expectRefused(t, "dataDir", err)
	_, err = Open(dir, `{"fsync": "never"}`+"\x00junk")
	expectRefused(t, "optionsJSON", err)
}

// An integer outside int64 in Request's data is refused, naming its place.
func TestIntegerOutsideInt64IsRefused(t *testing.T) {
	_, root, engine := openFresh(t)
	defer engine.Close()
	_, err := engine.Request(root, "update", "sys/mounts/database", map[string]any{
		"type": "database", "config": map[string]any{"default_lease_ttl": uint64(math.MaxInt64) + 1},
	})
	aerr := expectRefused(t, "data.config.default_lease_ttl", err)
	if !strings.Contains(aerr.Reason, "9223372036854775808") {
		t.Fatalf("reason: %v", aerr)
	}
	_, err = engine.Request(root, "update", "auth/token/create", map[string]any{"policies": []any{1, uint64(math.MaxUint64)}})
	expectRefused(t, "data.policies[1]", err)
	if _, ok := mounts(t, engine, root)["database/"]; ok {
		t.Fatal("a refused request reached the engine")
	}
	// The edges of int64, and floats, pass the check.
	for _, value := range []any{int64(math.MaxInt64), int64(math.MinInt64), 1.5} {
		_, err = engine.Request(root, "update", "auth/token/create", map[string]any{"ttl": value})
		var aerr *ArgumentError
		if errors.As(err, &aerr) {
			t.Fatalf("%v refused: %v", value, err)
		}
	}
}
