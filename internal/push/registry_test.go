package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/httpx"
)

// TestRegistryError: a registry's error answer reads as its status and its
// error codes, parsed by ggcr, without the request URL (upload URLs carry
// session state), and 5xx answers are worth another try.
func TestRegistryError(t *testing.T) {
	req := &http.Request{Method: http.MethodPut, URL: &url.URL{Scheme: "http", Host: "reg", Path: "/v2/x/blobs/uploads/u", RawQuery: "_state=state-token"}}
	tests := []struct {
		name      string
		status    int
		body      string
		want      string
		retryable bool
	}{
		{"registry error codes", 401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, "401 Unauthorized: UNAUTHORIZED: authentication required", false},
		{"no body", 502, "", "unexpected status code 502 Bad Gateway", true},
		{"not JSON", 503, "try later", "unexpected status code 503 Service Unavailable: try later", true},
		{"expected status", 201, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{
				StatusCode: tt.status, Status: fmt.Sprintf("%d %s", tt.status, http.StatusText(tt.status)),
				Body: io.NopCloser(strings.NewReader(tt.body)), Request: req,
			}
			err := registryError(resp, http.StatusCreated)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got := retryable(t.Context(), err); got != tt.retryable {
				t.Errorf("retryable = %v, want %v", got, tt.retryable)
			}
		})
	}
}

// TestDeadline: a request whose answer does not come, or whose body stops
// coming, within the request timeout fails as a timeout (which Retry
// retries); a body that keeps coming may take longer in all; a streamed
// upload body is left to the upload watchdog.
func TestDeadline(t *testing.T) {
	const d = 200 * time.Millisecond
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			<-release
		case "/stall-body":
			w.Write([]byte("start"))
			w.(http.Flusher).Flush()
			<-release
		case "/slow-body": // 8 pieces, d/2 apart: 2d in all, never d idle
			for range 8 {
				w.Write([]byte("piece"))
				w.(http.Flusher).Flush()
				time.Sleep(d / 2)
			}
		case "/upload":
			io.Copy(io.Discard, r.Body)
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handlers
	rt := deadline(http.DefaultTransport, d)
	get := func(path string, body io.Reader) (string, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, body)
		if body != nil {
			req.Method, req.GetBody = http.MethodPut, nil
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	tests := []struct {
		path    string
		body    io.Reader
		want    string
		wantErr bool
	}{
		{path: "/hang", wantErr: true},
		{path: "/stall-body", wantErr: true},
		{path: "/slow-body", want: strings.Repeat("piece", 8)},
		// A streamed body taking longer than d to send: not cut.
		{path: "/upload", body: io.MultiReader(strings.NewReader("a"), slowReader{d * 2}, strings.NewReader("b"))},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := get(tt.path, tt.body)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "request timeout") || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want a request timeout", err)
				}
				if _, retry := httpx.Retryable(nil, err); !retry {
					t.Errorf("a request timeout is not retried: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// slowReader waits, then ends.
type slowReader struct{ wait time.Duration }

func (s slowReader) Read([]byte) (int, error) {
	time.Sleep(s.wait)
	return 0, io.EOF
}
