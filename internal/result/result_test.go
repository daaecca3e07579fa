package result

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "build.json")
	in := &BuildResult{
		Zuul: &ZuulRef{Pipeline: "post", Branch: "platform/acme"},
		Images: []BuiltImage{{Name: "openedx", Repository: "acme/openedx", Tags: []string{"latest"},
			ManifestDigest: "sha256:aa", ConfigDigest: "sha256:bb", Size: 42, Layout: "/l", Backend: "native"}},
	}
	if err := WriteFile(path, in, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the result (temp file left behind?)", len(entries))
	}
	var out BuildResult
	if err := ReadFile(path, &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != APIVersion || out.Kind != "BuildResult" || out.Generated.IsZero() {
		t.Errorf("header not stamped: %+v", out.Header)
	}
	if diff := cmp.Diff(in, &out); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
		is      error
	}{
		{"wrong kind", write("k.json", `{"apiVersion":"slipway.dev/v1","kind":"BuildResult","images":[]}`), `kind "BuildResult", want "PushResult"`, ErrWrongKind},
		{"future version", write("v.json", `{"apiVersion":"slipway.dev/v9","kind":"PushResult","images":[]}`), `apiVersion "slipway.dev/v9" is not supported`, nil},
		{"unknown field", write("u.json", `{"apiVersion":"slipway.dev/v1","kind":"PushResult","imagez":[]}`), `unknown field "imagez"`, nil},
		{"truncated", write("t.json", `{"apiVersion":"slipway.dev/v1","kind":"Pu`), "unexpected EOF", nil},
		{"missing", filepath.Join(dir, "none.json"), "no such file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p PushResult
			err := ReadFile(tt.path, &p)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReadFile() error = %v, want %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.path) && tt.name != "missing" {
				t.Errorf("error %q does not name the file", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestPushedImageReference(t *testing.T) {
	p := PushedImage{Name: "openedx", Regions: []RegionPushed{{Region: "a", Repository: "reg-a:5000/acme/openedx", Digest: "sha256:cc"}}}
	got, err := p.Reference("a")
	if err != nil || got != "reg-a:5000/acme/openedx@sha256:cc" {
		t.Errorf("Reference(a) = %q, %v", got, err)
	}
	if _, err := p.Reference("b"); err == nil || !strings.Contains(err.Error(), `region "b"`) {
		t.Errorf("Reference(b) error = %v, want one naming the region", err)
	}
}

// TestWriteAtomicRemovesDeadTemps: the temporary file of a writer killed
// before its rename (its lock free) is removed by the next write of the
// same path; a live writer's (locked) and other files are kept.
func TestWriteAtomicRemovesDeadTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.json")
	for _, name := range []string{".cluster.json.tmp-1", ".cluster.json.tmp-2", ".other.json.tmp-3"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	live, err := os.Open(filepath.Join(dir, ".cluster.json.tmp-2"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := syscall.Flock(int(live.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(path, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if want := []string{".cluster.json.tmp-2", ".other.json.tmp-3", "cluster.json"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
}
