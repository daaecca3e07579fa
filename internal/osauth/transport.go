package osauth

import (
	"crypto/tls"
	"net/http"
	"strings"

	"github.com/slipwayci/slipway/internal/httpx"
)

// Transport is the HTTP stack for OpenStack APIs: TLS settings, a user
// agent, and retries for requests that are safe to repeat. POST, PATCH and
// the like are sent once: repeating a cluster create after a 503 could
// create two clusters. Token requests are the exception: they create nothing.
func Transport(tc *tls.Config, stage string, policy *httpx.RetryPolicy) http.RoundTripper {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		base.TLSClientConfig = tc
	}
	p := httpx.DefaultRetry()
	if policy != nil {
		p = *policy
	}
	if stage == "" {
		stage = "osauth"
	}
	return &idempotentRetry{
		retry: httpx.UserAgent(httpx.Retry(base, p), stage),
		once:  httpx.UserAgent(base, stage),
	}
}

type idempotentRetry struct{ retry, once http.RoundTripper }

func (t *idempotentRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.Method == http.MethodGet, req.Method == http.MethodHead, req.Method == http.MethodDelete,
		req.Method == http.MethodPut, req.Method == http.MethodOptions,
		req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/auth/tokens"):
		return t.retry.RoundTrip(req)
	}
	return t.once.RoundTrip(req)
}
