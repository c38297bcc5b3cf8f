package lessor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
