package magnum

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/osauth"
)

// The benchmarks use an in-process emulator: they measure slipway's own
// cost (parsing, planning, request count, key generation), not a network.

func BenchmarkLoadSpec(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "cluster", "production.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := LoadSpec(bytes.NewReader(data), "production.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadSpecBaseline is plain yaml.v3 decoding of the same file, with
// no strictness, positions or validation.
func BenchmarkLoadSpecBaseline(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "cluster", "production.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var s Spec
		if err := yaml.Unmarshal(data, &s); err != nil {
			b.Fatal(err)
		}
	}
}

type benchEnv struct {
	auth     osauth.Options
	requests *atomic.Int64
}

func newBenchEnv(b *testing.B) *benchEnv {
	emu, err := openstackemu.New(openstackemu.Options{
		Users:          []openstackemu.User{{Name: "u", Password: "pw-bench", Project: "p"}},
		CreateDuration: time.Millisecond, UpdateDuration: time.Millisecond, DeleteDuration: time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	h := emu.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/magnum/") {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return &benchEnv{requests: &n, auth: osauth.Options{AuthURL: srv.URL + "/identity/v3", Username: "u", Password: "pw-bench",
		UserDomainName: "Default", ProjectName: "p", Region: "RegionOne"}}
}

func (be *benchEnv) opts(b *testing.B) Options {
	spec, err := LoadSpec(strings.NewReader(testSpec()), "spec.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return Options{Auth: be.auth, Spec: spec, PollInterval: time.Millisecond, MaxPollInterval: 5 * time.Millisecond}
}

// BenchmarkEnsureNoop is a rerun on a converged cluster: authentication,
// planning and the result. requests/op is the number of Magnum calls.
func BenchmarkEnsureNoop(b *testing.B) {
	be := newBenchEnv(b)
	o := be.opts(b)
	if _, err := ClusterEnsure(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	be.requests.Store(0)
	for b.Loop() {
		if _, err := ClusterEnsure(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(be.requests.Load())/float64(b.N), "requests/op")
}

// BenchmarkAuthListBaseline is the least any run does: authenticate and
// list the clusters once.
func BenchmarkAuthListBaseline(b *testing.B) {
	be := newBenchEnv(b)
	be.requests.Store(0)
	for b.Loop() {
		a, err := connect(context.Background(), be.auth)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := clusters.List(a.sc, nil).AllPages(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(be.requests.Load())/float64(b.N), "requests/op")
}

// BenchmarkKubeconfig writes a fresh kubeconfig each time (a new RSA key,
// a CSR signed by the emulator's CA).
func BenchmarkKubeconfig(b *testing.B) {
	be := newBenchEnv(b)
	o := be.opts(b)
	if _, err := ClusterEnsure(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	o.defaults()
	a, err := connect(context.Background(), be.auth)
	if err != nil {
		b.Fatal(err)
	}
	c, err := a.clusterByName(context.Background(), "c")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		o.Kubeconfig = filepath.Join(dir, "kc", strings.Repeat("x", i%3+1))
		_ = os.Remove(o.Kubeconfig)
		if _, err := ensureKubeconfig(context.Background(), &o, a, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSAKeyBaseline is the RSA 2048 key generation alone.
func BenchmarkRSAKeyBaseline(b *testing.B) {
	for b.Loop() {
		if _, err := rsa.GenerateKey(rand.Reader, keyBits); err != nil {
			b.Fatal(err)
		}
	}
}
