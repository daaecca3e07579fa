package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// fastRetry keeps fault tests quick; the policy is the same shape as prod.
func fastRetry() *httpx.RetryPolicy {
	return &httpx.RetryPolicy{Attempts: 4, Base: 10 * time.Millisecond, Max: 100 * time.Millisecond}
}

// uniqueRepo returns a repository path no other test or run uses, since the
// registries are shared.
func uniqueRepo(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	n := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	for strings.Contains(n, "--") {
		n = strings.ReplaceAll(n, "--", "-")
	}
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return "test/" + strings.Trim(n, "-") + "-" + hex.EncodeToString(b)
}

// randomImage builds an image of random (incompressible) layers.
func randomImage(t *testing.T, layers int, size int64) v1.Image {
	t.Helper()
	img := empty.Image
	for range layers {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	return mutate.MediaType(mutate.ConfigMediaType(img, types.OCIConfigJSON), types.OCIManifestSchema1)
}

// writeLayout writes img to a fresh OCI layout and returns its directory.
func writeLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// skopeoDigest reads ref's manifest with skopeo (an independent client) and
// returns the sha256 of its raw bytes.
func skopeoDigest(t *testing.T, ref string) string {
	t.Helper()
	sk := testenv.Tool(t, "skopeo")
	cmd := exec.Command(sk, "inspect", "--raw", "--tls-verify=false", "docker://"+ref)
	cmd.Env = append(cmd.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("skopeo inspect %s: %v: %s", ref, err, stderr)
	}
	sum := sha256.Sum256(out)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tagDigest asks the registry (plain HTTP) what a tag points at; "" if none.
func tagDigest(t *testing.T, host, repo, tag string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", manifestAccepts)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("HEAD %s/%s:%s: %v", host, repo, tag, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s/%s:%s: %s", host, repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// faultProxy is a reverse proxy in front of a real registry. hook sees every
// request first and returns true when it answered it itself.
type faultProxy struct {
	*httptest.Server
	mu   sync.Mutex
	hook func(w http.ResponseWriter, r *http.Request) bool
	// after, if set, runs after a proxied response (e.g. to damage storage).
	after    func(r *http.Request, status int)
	requests []string
	// closing is closed when the test ends: hooks holding connections let go.
	closing chan struct{}
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	fp := &faultProxy{closing: make(chan struct{})}
	fp.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.mu.Lock()
		fp.requests = append(fp.requests, r.Method+" "+r.URL.Path)
		hook, after := fp.hook, fp.after
		fp.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: 200}
		rp.ServeHTTP(sw, r)
		if after != nil {
			after(r, sw.status)
		}
	}))
	// A small receive buffer, as on a congested link: a proxy that stops
	// reading stalls the sender quickly instead of after megabytes of
	// kernel buffering.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp.Listener.Close()
	fp.Listener = l
	fp.Start()
	t.Cleanup(fp.Close)
	t.Cleanup(func() { close(fp.closing) })
	return fp
}

func (fp *faultProxy) set(hook func(w http.ResponseWriter, r *http.Request) bool) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.hook = hook
}

func (fp *faultProxy) host() string { return strings.TrimPrefix(fp.URL, "http://") }

func (fp *faultProxy) count(prefix string) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	n := 0
	for _, r := range fp.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// isBlobPut matches the request that completes a blob upload.
func isBlobPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// regionsAB returns the two real regions with a namespace private to the test.
func regionsAB(t *testing.T) []Region {
	a, b := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B")
	return []Region{{Name: "a", Registry: a}, {Name: "b", Registry: b}}
}

func quietOpts(regions []Region) Options {
	return Options{Regions: regions, Retry: fastRetry(), StallTimeout: 5 * time.Second, ResponseTimeout: 30 * time.Second}
}

func run(t *testing.T, o Options) (*result.PushResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	return res, err
}

// bytesBlob is an in-memory blob for fan-out tests.
func bytesBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Size:   int64(len(data)),
		open:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}
}

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}
