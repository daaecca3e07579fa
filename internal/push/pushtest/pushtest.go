// Package pushtest holds what push-registry's tests share: random images
// and layouts, repositories of their own on the shared registries, and a
// fault-injecting proxy in front of a real registry.
package pushtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NewImage builds an OCI image of random (incompressible) layers.
func NewImage(layers int, size int64) (v1.Image, error) {
	img := empty.Image
	for range layers {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	return mutate.MediaType(mutate.ConfigMediaType(img, types.OCIConfigJSON), types.OCIManifestSchema1), nil
}

// RandomImage is NewImage for a test.
func RandomImage(t testing.TB, layers int, size int64) v1.Image {
	t.Helper()
	img, err := NewImage(layers, size)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Content is an image or an index.
type Content interface {
	MediaType() (types.MediaType, error)
}

// WriteLayout writes an image or an index to a fresh OCI layout and
// returns its directory.
func WriteLayout(t testing.TB, x Content) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	switch x := x.(type) {
	case v1.ImageIndex:
		err = p.AppendIndex(x)
	case v1.Image:
		err = p.AppendImage(x)
	default:
		t.Fatalf("WriteLayout: %T is neither an image nor an index", x)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Digest returns the digest of an image or index.
func Digest(t testing.TB, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// UniqueRepo returns a repository path no other test or run uses, since the
// registries are shared.
func UniqueRepo(t testing.TB) string {
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

// TagDigest asks the registry at host (plain HTTP) what a tag points at,
// with ggcr's client; "" if nothing.
func TagDigest(t testing.TB, host, repo, tag string) string {
	t.Helper()
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return ""
	}
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

// MustContain fails t for every sub that s lacks.
func MustContain(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}

// IsBlobPut matches the request that completes a blob upload.
func IsBlobPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// FaultProxy is a reverse proxy in front of a real registry. Its hook sees
// every request first and answers it itself when it returns true.
type FaultProxy struct {
	*httptest.Server
	mu   sync.Mutex
	hook func(w http.ResponseWriter, r *http.Request) bool
	// after, if set, runs after a proxied response (e.g. to damage storage).
	after    func(r *http.Request, status int)
	requests []string
	// Closing is closed when the test ends: hooks holding connections let go.
	Closing chan struct{}
}

// NewFaultProxy starts a proxy to the registry at target (host:port).
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	fp := &FaultProxy{Closing: make(chan struct{})}
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
	t.Cleanup(func() { close(fp.Closing) })
	return fp
}

// Set installs hook (nil: proxy everything).
func (fp *FaultProxy) Set(hook func(w http.ResponseWriter, r *http.Request) bool) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.hook = hook
}

// SetAfter installs a function run after every proxied response (nil: none).
func (fp *FaultProxy) SetAfter(after func(r *http.Request, status int)) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.after = after
}

// Host is the proxy's host:port.
func (fp *FaultProxy) Host() string { return strings.TrimPrefix(fp.URL, "http://") }

// Count is how many requests so far start with prefix ("METHOD /path").
func (fp *FaultProxy) Count(prefix string) int {
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
