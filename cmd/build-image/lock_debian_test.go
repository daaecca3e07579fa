package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayci/slipway/internal/buildimage"
)

// TestLockDebian resolves a lock from deb.debian.org (bookworm, its updates
// and security suites; indexes cached under ~/.cache/slipway/debs): the
// closure of ca-certificates, checked, and a second run changes nothing.
func TestLockDebian(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "ca.lock")
	code, stdout, stderr := runCLI(t, "lock-debian", "--lock", lock, "--package", "ca-certificates")
	if code != 0 {
		t.Fatalf("lock-debian exit %d (deb.debian.org must be reachable over HTTP):\n%s", code, stderr)
	}
	var res buildimage.LockResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || !res.Changed || res.Packages < 5 {
		t.Fatalf("stdout %q (%v): want a changed lock of several packages", stdout, err)
	}
	l, err := buildimage.LoadDebianLock(lock)
	if err != nil {
		t.Fatalf("the written lock does not check: %v", err)
	}
	names := map[string]bool{}
	for _, p := range l.Packages {
		names[p.Name] = true
	}
	for _, want := range []string{"ca-certificates", "openssl", "libssl3", "libc6", "debconf"} {
		if !names[want] {
			t.Errorf("lock of ca-certificates lacks %s: %v", want, names)
		}
	}
	before, _ := os.ReadFile(lock)
	code, stdout, stderr = runCLI(t, "lock-debian", "--lock", lock)
	after, _ := os.ReadFile(lock)
	if code != 0 || !strings.Contains(stdout, `"changed": false`) || !bytes.Equal(before, after) {
		t.Errorf("second run: exit %d, stdout %q, file changed %v:\n%s", code, stdout, !bytes.Equal(before, after), stderr)
	}
}

// TestLockDebianBadSignature: an InRelease whose signed text was altered
// (served by a mirror in the middle) is refused, and no lock is written.
func TestLockDebianBadSignature(t *testing.T) {
	resp, err := http.Get("http://deb.debian.org/debian/dists/bookworm-updates/InRelease")
	if err != nil {
		t.Fatalf("deb.debian.org must be reachable over HTTP: %v", err)
	}
	real, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetching InRelease: %v %s", err, resp.Status)
	}
	forged := bytes.Replace(real, []byte("Codename: bookworm-updates"), []byte("Codename: bookworm-updateZ"), 1)
	if bytes.Equal(forged, real) {
		t.Fatal("InRelease has no Codename line to alter")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(forged) }))
	defer srv.Close()
	lock := filepath.Join(t.TempDir(), "x.lock")
	code, _, stderr := runCLI(t, "lock-debian", "--lock", lock, "--package", "tzdata", "--source", srv.URL+"/debian bookworm-updates main")
	if code != 1 || !strings.Contains(stderr, "the signature does not verify") {
		t.Errorf("exit %d, stderr %q: want 1 and a signature error", code, stderr)
	}
	if _, err := os.Stat(lock); err == nil {
		t.Error("a lock was written from a forged index")
	}
}

// TestLockDebianBadInput: usage errors exit 2 with one line naming the flag.
func TestLockDebianBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no lock", []string{"lock-debian", "--package", "x"}, "--lock: missing: the lock file to write"},
		{"no packages", []string{"lock-debian", "--lock", filepath.Join(dir, "new.lock")}, "--package: missing: the packages the image needs"},
		{"bad source", []string{"lock-debian", "--lock", filepath.Join(dir, "a.lock"), "--package", "x", "--source", "http://deb.debian.org/debian"}, `--source: "http://deb.debian.org/debian" is not "URL SUITE [COMPONENT...]"`},
		{"bad url", []string{"lock-debian", "--lock", filepath.Join(dir, "a.lock"), "--package", "x", "--source", "ftp://x bookworm"}, `--source: "ftp://x" is not an archive URL`},
		{"no keyring", []string{"lock-debian", "--lock", filepath.Join(dir, "a.lock"), "--package", "x", "--keyring", filepath.Join(dir, "none.gpg")}, `--keyring: "` + filepath.Join(dir, "none.gpg") + `": no such file`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, c.args...)
			if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and one line with %q", code, stdout, stderr, c.want)
			}
		})
	}
}
