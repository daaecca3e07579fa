package push

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/usererr"
)

// TestFaults puts a fault-injecting proxy in front of one real registry and
// checks each failure's outcome: transient faults are retried and the push
// completes; lasting faults fail with an error naming the region and blob,
// no tag moves in any region, and a rerun finishes the push without
// re-uploading what landed.
func TestFaults(t *testing.T) {
	a, b := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B")
	storeA := testKeystone(t).store(t, "a") // region a's registry stores there

	type fault struct {
		name string
		// behind is the registry the proxy fronts: "a" or "b".
		behind string
		// setup installs the fault; layer is the digest of the image's first layer.
		setup func(fp *pushtest.FaultProxy, layer string) func()
		// wantErr: substrings of the error, or nil when the push must succeed.
		wantErr []string
		// healthyLanded: the other region got every blob in the failed run.
		healthyLanded bool
		attempts      int
		// layerSize of the image's 2 layers (default 600 kB).
		layerSize int64
	}
	// answer makes do answer the first k requests that match (k 0: every
	// one); layer is the digest of the image's first layer.
	var n atomic.Int32
	answer := func(k int32, match func(r *http.Request, layer string) bool, do func(w http.ResponseWriter, r *http.Request)) func(fp *pushtest.FaultProxy, layer string) func() {
		return func(fp *pushtest.FaultProxy, layer string) func() {
			n.Store(0)
			fp.Set(func(w http.ResponseWriter, r *http.Request) bool {
				if !match(r, layer) || (k > 0 && n.Add(1) > k) {
					return false
				}
				do(w, r)
				return true
			})
			return func() { fp.Set(nil) }
		}
	}
	anyReq := func(*http.Request, string) bool { return true }
	blobPut := func(r *http.Request, _ string) bool { return pushtest.IsBlobPut(r) }
	layerPut := func(r *http.Request, layer string) bool {
		return pushtest.IsBlobPut(r) && strings.Contains(r.URL.RawQuery, strings.TrimPrefix(layer, "sha256:"))
	}
	status := func(code int) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
	}
	dropMidBlob := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.CopyN(io.Discard, r.Body, 200_000)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	// stall takes the connection and never reads or answers again. Stall
	// cases use a layer larger than the kernel's socket buffers, so the
	// sender blocks mid-body.
	var fpStall *pushtest.FaultProxy
	stall := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.CopyN(io.Discard, r.Body, 100_000)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		go func() { <-fpStall.Closing; conn.Close() }()
	}
	cases := []fault{
		{name: "5xx burst on every kind of request", behind: "b", setup: answer(3, anyReq, status(http.StatusServiceUnavailable))},
		{name: "5xx on blob uploads", behind: "b", setup: answer(3, blobPut, status(http.StatusInternalServerError))},
		{name: "429 then success", behind: "a", setup: answer(2, anyReq, status(http.StatusTooManyRequests))},
		{name: "connection dropped mid-blob, recovers", behind: "b", setup: answer(2, blobPut, dropMidBlob)},
		{name: "stalled upload, recovers", behind: "b", layerSize: 6 << 20, setup: answer(1, layerPut, stall)},
		{
			name: "connection dropped mid-blob on every try", behind: "b", attempts: 2, setup: answer(0, layerPut, dropMidBlob),
			wantErr: []string{"region b", "blob ", "uploading (attempt 2 of 2)", "no tag was moved in any region", "rerun"}, healthyLanded: true,
		},
		{
			name: "stalled upload on every try", behind: "a", attempts: 2, layerSize: 6 << 20, setup: answer(0, layerPut, stall),
			wantErr: []string{"region a", "upload stalled: no progress for 5s", "no tag was moved in any region"}, healthyLanded: true,
		},
		{
			name: "5xx that never ends", behind: "b", attempts: 2, setup: answer(0, blobPut, status(http.StatusBadGateway)),
			wantErr: []string{"region b", "502", "no tag was moved in any region"}, healthyLanded: true,
		},
		{
			name: "region down", behind: "b",
			setup: func(fp *pushtest.FaultProxy, _ string) func() {
				fp.Listener.Close() // nothing listens: connection refused
				return nil
			},
			wantErr: []string{"region b", "connection refused", "nothing was pushed"},
		},
		{
			name: "registry accepts a blob but stores zero bytes", behind: "a",
			setup: func(fp *pushtest.FaultProxy, layer string) func() {
				d, err := v1.NewHash(layer)
				if err != nil {
					t.Fatal(err)
				}
				fp.SetAfter(func(r *http.Request, status int) {
					if pushtest.IsBlobPut(r) && status == http.StatusCreated && strings.Contains(r.URL.RawQuery, d.Hex) {
						zeroBlob(t, storeA, d)
					}
				})
				// The operator's fix, per the error message: remove the blob
				// from the registry's storage.
				return func() {
					fp.SetAfter(nil)
					if err := storeA.deleteBlob(context.Background(), d); err != nil {
						t.Errorf("removing the zero-byte object: %v", err)
					}
				}
			},
			wantErr: []string{"verifying region a", "blob sha256:", "has it with 0 bytes", "remove docker/registry/v2/blobs/sha256/", "no tag was moved in any region"}, healthyLanded: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.layerSize
			if size == 0 {
				size = 600_000
			}
			img := pushtest.RandomImage(t, 2, size)
			layers, _ := img.Layers()
			ld, _ := layers[0].Digest()
			repo := pushtest.UniqueRepo(t)
			real := map[string]string{"a": a, "b": b}
			fp := pushtest.NewFaultProxy(t, real[tc.behind])
			fpStall = fp
			regions := []Region{{Name: "a", Registry: a}, {Name: "b", Registry: b}}
			healthy := 1
			if tc.behind == "b" {
				regions[1].Registry = fp.Host()
				healthy = 0
			} else {
				regions[0].Registry = fp.Host()
			}
			undo := tc.setup(fp, ld.String())
			if tc.name == "region down" {
				// Keep a proxy address that refuses connections.
				regions[1].Registry = fp.Listener.Addr().String()
			}
			o := layoutOpts(t, regions, img, repo, "v1")
			// Both regions' registries store in Swift, which may pause
			// reading for a while as it writes a segment.
			o.StallTimeout, o.ResponseTimeout = 5*time.Second, time.Minute
			o.Log = slog.New(slog.NewTextHandler(tWriter{t}, nil))
			if tc.attempts > 0 {
				o.Attempts = tc.attempts
			}
			want := pushtest.Digest(t, img)
			_, err := run(t, o)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("push through a transient fault: %v", err)
				}
				for name, host := range real {
					if got := pushtest.TagDigest(t, host, repo, "v1"); got != want {
						t.Errorf("region %s: v1 = %q, want %s", name, got, want)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("push succeeded through a lasting fault")
			}
			pushtest.MustContain(t, err.Error(), tc.wantErr...)
			if usererr.Is(err) {
				t.Errorf("a fault is reported as bad input (exit 2): %v", err)
			}
			for name, host := range real {
				if got := pushtest.TagDigest(t, host, repo, "v1"); got != "" {
					t.Errorf("region %s: tag v1 moved to %s although the push failed", name, got)
				}
			}
			if undo != nil {
				undo()
			}
			if tc.name == "region down" {
				regions[1].Registry = b
				o.Regions = regions
			}
			res, err := run(t, o)
			if err != nil {
				t.Fatalf("rerun after the fault: %v", err)
			}
			for name, host := range real {
				if got := pushtest.TagDigest(t, host, repo, "v1"); got != want {
					t.Errorf("rerun: region %s: v1 = %q, want %s", name, got, want)
				}
			}
			if h := res.Images[0].Regions[healthy]; tc.healthyLanded && h.BytesUploaded != 0 {
				t.Errorf("rerun re-uploaded %d bytes to healthy region %s", h.BytesUploaded, h.Region)
			}
			if !tc.healthyLanded {
				if h := res.Images[0].Regions[healthy]; h.BlobsUploaded != 3 {
					t.Errorf("region %s: rerun uploaded %d blobs, want 3: the failed run must not have pushed there", h.Region, h.BlobsUploaded)
				}
			}
		})
	}
}

// TestCancel interrupts a push mid-blob: the error says so, no tag moves,
// open upload sessions are cancelled, and a rerun completes.
func TestCancel(t *testing.T) {
	a, b := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B")
	fp := pushtest.NewFaultProxy(t, b)
	started := make(chan struct{}, 16)
	fp.Set(func(w http.ResponseWriter, r *http.Request) bool {
		if pushtest.IsBlobPut(r) {
			started <- struct{}{}
			// A slow link: the body trickles in.
			buf := make([]byte, 4096)
			for {
				if _, err := r.Body.Read(buf); err != nil {
					return true
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		return false
	})
	img := pushtest.RandomImage(t, 2, 1_000_000)
	repo := pushtest.UniqueRepo(t)
	o := layoutOpts(t, []Region{{Name: "a", Registry: a}, {Name: "b", Registry: fp.Host()}}, img, repo, "v1")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	_, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	pushtest.MustContain(t, err.Error(), "interrupted", "no tag was moved in any region")
	if got := pushtest.TagDigest(t, a, repo, "v1"); got != "" {
		t.Errorf("region a: tag moved to %s after an interrupted push", got)
	}
	if fp.Count("DELETE ") == 0 {
		t.Errorf("no upload session was cancelled on region b")
	}
	fp.Set(nil)
	if _, err := run(t, o); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if got := pushtest.TagDigest(t, b, repo, "v1"); got != pushtest.Digest(t, img) {
		t.Errorf("rerun: region b v1 = %q", got)
	}
}

// tWriter sends logs to the test's log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
