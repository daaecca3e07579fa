package push

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
