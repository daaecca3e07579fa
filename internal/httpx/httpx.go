// Package httpx holds slipway's cross-cutting HTTP behaviour as
// http.RoundTripper wrappers: retries with backoff and jitter, a user agent,
// and debug logging with credentials redacted.
package httpx

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/slipwayci/slipway/internal/version"
)

// RetryPolicy configures Retry. The zero value is not useful: use DefaultRetry.
type RetryPolicy struct {
	// Attempts is the total number of tries, first one included.
	Attempts int
	// Base is the first backoff; each retry doubles it up to Max.
	Base, Max time.Duration
	// OnRetry, if set, is called before each retry (for logs and tests).
	OnRetry func(req *http.Request, attempt int, reason string, wait time.Duration)
}

// DefaultRetry retries 5 times over roughly 15 seconds.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{Attempts: 6, Base: 250 * time.Millisecond, Max: 8 * time.Second}
}

type retryTransport struct {
	next   http.RoundTripper
	policy RetryPolicy
}

// Retry wraps next so that requests failing with a retryable condition (5xx,
// 429, connection reset or refused, timeouts) are retried with exponential
// backoff and full jitter, honouring Retry-After. A request whose body cannot
// be replayed (no GetBody) is never retried after the body was sent.
func Retry(next http.RoundTripper, policy RetryPolicy) http.RoundTripper {
	return &retryTransport{next: orDefault(next), policy: policy}
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			if req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, errors.New("request body cannot be replayed for a retry")
				}
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r = req.Clone(ctx)
				r.Body = body
			}
		}
		resp, err := t.next.RoundTrip(r)
		reason, retry := Retryable(resp, err)
		replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		if !retry || !replayable || attempt >= t.policy.Attempts || ctx.Err() != nil {
			return resp, err
		}
		wait := t.backoff(attempt, resp)
		if resp != nil {
			// Drain so the connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if t.policy.OnRetry != nil {
			t.policy.OnRetry(req, attempt, reason, wait)
		}
		slog.Debug("retrying request", "method", req.Method, "url", Redact(req.URL.String()), "attempt", attempt, "reason", reason, "wait", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (t *retryTransport) backoff(attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if s := resp.Header.Get("Retry-After"); s != "" {
			if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
				d := time.Duration(secs) * time.Second
				if d > t.policy.Max {
					d = t.policy.Max
				}
				return d
			}
		}
	}
	d := t.policy.Base << (attempt - 1)
	if d > t.policy.Max || d <= 0 {
		d = t.policy.Max
	}
	// Full jitter: spread retries of many clients hitting one registry.
	return d/2 + rand.N(d/2+1)
}

// Retryable reports whether a response or error is worth retrying, and why.
func Retryable(resp *http.Response, err error) (string, bool) {
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return "", false
		}
		var ne net.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return "timeout", true
		case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
			errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return "connection: " + err.Error(), true
		case errors.As(err, &ne) && ne.Timeout():
			return "timeout", true
		}
		return "", false
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return "429 too many requests", true
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		return resp.Status, true
	}
	return "", false
}

// UserAgent sets "slipway-<stage>/<version>" on every request.
func UserAgent(next http.RoundTripper, stage string) http.RoundTripper {
	next, ua := orDefault(next), version.UserAgent(stage)
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		r := req.Clone(req.Context())
		r.Header.Set("User-Agent", ua)
		return next.RoundTrip(r)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// orDefault is next, or http.DefaultTransport when next is nil.
func orDefault(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		return http.DefaultTransport
	}
	return next
}
