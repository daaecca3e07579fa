package httpx

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func fastPolicy(retries *int32) RetryPolicy {
	return RetryPolicy{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond,
		OnRetry: func(*http.Request, int, string, time.Duration) { atomic.AddInt32(retries, 1) }}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name        string
		failures    int // responses before success
		status      int
		method      string
		body        string
		wantStatus  int
		wantRetries int32
	}{
		{"503 burst then ok", 2, http.StatusServiceUnavailable, http.MethodGet, "", 200, 2},
		{"429 then ok", 1, http.StatusTooManyRequests, http.MethodGet, "", 200, 1},
		{"put with replayable body", 2, http.StatusBadGateway, http.MethodPut, "payload", 200, 2},
		{"404 is final", 1, http.StatusNotFound, http.MethodGet, "", 404, 0},
		{"persistent 500 gives up", 10, http.StatusInternalServerError, http.MethodGet, "", 500, 3},
		{"501 is final", 1, http.StatusNotImplemented, http.MethodGet, "", 501, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if string(b) != tt.body {
					t.Errorf("attempt got body %q, want %q", b, tt.body)
				}
				if n := atomic.AddInt32(&calls, 1); int(n) <= tt.failures {
					w.WriteHeader(tt.status)
					return
				}
				w.WriteHeader(200)
			}))
			defer srv.Close()
			var retries int32
			client := &http.Client{Transport: Retry(nil, fastPolicy(&retries))}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequest(tt.method, srv.URL, body)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if retries != tt.wantRetries {
				t.Errorf("retries = %d, want %d", retries, tt.wantRetries)
			}
		})
	}
}

func TestRetryDroppedConnection(t *testing.T) {
	// A listener that resets the first connection, then serves normally.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if atomic.AddInt32(&n, 1) == 1 {
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	var retries int32
	client := &http.Client{Transport: Retry(&http.Transport{DisableKeepAlives: true}, fastPolicy(&retries))}
	resp, err := client.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatalf("Get after a dropped connection: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" || retries != 1 {
		t.Errorf("body %q after %d retries; want ok after 1", b, retries)
	}
}

func TestRetryStopsOnCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	policy := RetryPolicy{Attempts: 100, Base: time.Hour, Max: time.Hour,
		OnRetry: func(*http.Request, int, string, time.Duration) { cancel() }}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	done := make(chan error, 1)
	go func() {
		_, err := (&http.Client{Transport: Retry(nil, policy)}).Do(req)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("cancelled request returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retry loop ignored cancellation")
	}
}

func TestUserAgentAndRedact(t *testing.T) {
	var ua string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ua = r.UserAgent() }))
	defer srv.Close()
	resp, err := (&http.Client{Transport: UserAgent(nil, "push-registry")}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(ua, "slipway-push-registry/") {
		t.Errorf("User-Agent = %q", ua)
	}
	got := Redact("http://user:pw@swift:8080/v1/AUTH_t/c/o?temp_url_sig=abcdef&temp_url_expires=1")
	if strings.Contains(got, "pw") || strings.Contains(got, "abcdef") || !strings.Contains(got, "temp_url_expires=1") {
		t.Errorf("Redact() = %q", got)
	}
}

// TestCertPool: a pool from a CA file trusts a server that CA signed; a
// file without a certificate, or none at all, is an error naming the file.
func TestCertPool(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	notPEM := write("key.txt", []byte("not a certificate\n"))

	pool, err := CertPool(ca)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatalf("the pool does not trust the server the file's CA signed: %v", err)
	}
	resp.Body.Close()

	for _, tc := range []struct{ name, file, want string }{
		{"no PEM", notPEM, notPEM + " holds no PEM certificate"},
		{"missing", filepath.Join(dir, "nope.pem"), "nope.pem: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CertPool(tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
