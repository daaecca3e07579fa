package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/usererr"
)

// client talks the distribution API to one region's registry. It speaks
// only the few calls push-registry needs, so that each blob body can be a
// stream shared by every region.
type client struct {
	region Region
	base   string // scheme://host
	http   *http.Client
	// journal records the upload sessions this client opens (nil: none
	// recorded); st is the storage of a swift region, where a session is
	// cancelled by deleting its objects.
	journal *uploadJournal
	st      *storage
	// openWithin bounds how long a request that opens a session takes,
	// every retry included.
	openWithin time.Duration
}

// manifestAccepts lists every manifest media type we copy.
var manifestAccepts = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// baseTransport builds the TLS-aware transport for a region; retries and the
// user agent wrap it.
func baseTransport(r Region, conn *Conn) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = 0
	t.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if r.CAFile != "" {
		pool, err := httpx.CertPool(r.CAFile)
		if err != nil {
			return nil, usererr.Errorf("region %s: caFile: %w", r.Name, err)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return httpx.UserAgent(httpx.Retry(deadline(t, conn.RequestTimeout), *conn.Retry), "push-registry"), nil
}

// deadline gives every try of a request d to get its response headers,
// and its response body d between reads: a registry that accepts
// connections but never answers (a frozen process, a hung Swift proxy)
// fails the try, which Retry may repeat. Streamed request bodies (blob
// uploads, which cannot be replayed) are left to the upload watchdog.
func deadline(next http.RoundTripper, d time.Duration) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if d <= 0 || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
			return next.RoundTrip(req)
		}
		ctx, cancel := context.WithCancelCause(req.Context())
		errTimeout := fmt.Errorf("%w: no answer for %s (request timeout)", context.DeadlineExceeded, d)
		timer := time.AfterFunc(d, func() { cancel(errTimeout) })
		resp, err := next.RoundTrip(req.WithContext(ctx))
		if err != nil {
			timer.Stop()
			if context.Cause(ctx) == errTimeout {
				err = errTimeout
			}
			cancel(nil)
			return nil, err
		}
		timer.Reset(d)
		resp.Body = &idleBody{ReadCloser: resp.Body, timer: timer, d: d, cancel: cancel, ctx: ctx, errTimeout: errTimeout}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// idleBody restarts the request's timer on every read and releases it on
// Close.
type idleBody struct {
	io.ReadCloser
	timer      *time.Timer
	d          time.Duration
	cancel     context.CancelCauseFunc
	ctx        context.Context
	errTimeout error
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.timer.Reset(b.d)
	if err != nil && err != io.EOF && context.Cause(b.ctx) == b.errTimeout {
		err = b.errTimeout
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// newClient pings the registry and sets up its auth (basic or bearer token)
// for the given repositories.
func newClient(ctx context.Context, r Region, cred Credential, conn *Conn, repos []string) (*client, error) {
	reg, err := r.registry()
	if err != nil {
		return nil, usererr.Errorf("region %s: %w", r.Name, err)
	}
	inner, err := baseTransport(r, conn)
	if err != nil {
		return nil, err
	}
	scopes := make([]string, 0, len(repos))
	for _, repo := range repos {
		scopes = append(scopes, reg.Repo(repo).Scope(transport.PushScope))
	}
	t, err := transport.NewWithContext(ctx, reg, cred.authenticator(), inner, scopes)
	if err != nil {
		return nil, fmt.Errorf("connecting to region %s registry %s as %s: %w", r.Name, r.Registry, cred, cleanErr(err))
	}
	return &client{
		region: r,
		base:   reg.Scheme() + "://" + reg.RegistryStr(),
		// No overall timeout: blobs can take long; stalls are caught by the
		// upload watchdog and everything else by ctx.
		http:       &http.Client{Transport: t},
		openWithin: time.Duration(max(conn.Retry.Attempts, 1)) * (conn.RequestTimeout + conn.Retry.Max + time.Second),
	}, nil
}

// cleanErr shortens transport errors to method, URL path and cause: query
// strings (upload state, Swift temp URL signatures, tokens) stay out of
// messages.
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u := httpx.Redact(ue.URL)
		if p, perr := url.Parse(u); perr == nil {
			p.RawQuery = ""
			u = p.String()
		}
		return fmt.Errorf("%s %s: %w", ue.Op, u, ue.Err)
	}
	return err
}

func (c *client) url(repo, kind, ref string) string {
	return c.base + "/v2/" + repo + "/" + kind + "/" + ref
}

func (c *client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, cleanErr(err)
	}
	return resp, nil
}

// registryError is nil when resp has one of the ok statuses, else the
// registry's error, parsed by ggcr's transport.CheckError. The request URL
// is left out of it (upload URLs carry session state; the caller names the
// repository and blob) and the HTTP status kept in.
func registryError(resp *http.Response, ok ...int) error {
	err := transport.CheckError(resp, ok...)
	var te *transport.Error
	if errors.As(err, &te) {
		te.Request = nil
		if len(te.Errors) > 0 {
			return fmt.Errorf("%s: %w", resp.Status, te)
		}
	}
	return err
}

// headBlob reports the size the registry has for a blob, or -1 if unknown.
func (c *client) headBlob(ctx context.Context, repo string, d v1.Hash) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url(repo, "blobs", d.String()), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.ContentLength, nil
	case http.StatusNotFound:
		return -1, nil
	}
	return 0, registryError(resp)
}

// startUpload opens an upload session, trying a cross-repository mount from
// `from` first. mounted is true when the registry linked the blob and no
// upload is needed.
func (c *client) startUpload(ctx context.Context, repo, from string, d v1.Hash) (location string, mounted bool, err error) {
	u := c.base + "/v2/" + repo + "/blobs/uploads/"
	if from != "" {
		u += "?" + url.Values{"mount": {d.String()}, "from": {from}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", false, err
	}
	// Recorded before the session is opened, and again with its location
	// before the blob is sent: if this run dies, the next one cancels it.
	rec, err := c.journal.begin(uploadRecord{Region: c.region.Name, Storage: storageKey(c.region), Repository: repo, Digest: d.String(), Started: time.Now().UTC(), OpenBy: time.Now().UTC().Add(c.openWithin)}, c.st)
	if err != nil {
		return "", false, fmt.Errorf("recording the upload session in the state directory: %w", err)
	}
	resp, err := c.do(req)
	if err != nil {
		c.journal.forget(rec)
		return "", false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		c.journal.forget(rec)
		return "", true, nil
	case http.StatusAccepted:
		loc, err := c.resolve(req.URL, resp.Header.Get("Location"))
		if err != nil {
			c.journal.forget(rec)
			return "", false, err
		}
		if err := c.journal.opened(rec, loc); err != nil {
			c.cancelUpload(loc)
			c.journal.forget(rec)
			return "", false, fmt.Errorf("recording the upload session in the state directory: %w", err)
		}
		return loc, false, nil
	}
	c.journal.forget(rec)
	return "", false, registryError(resp)
}

func (c *client) resolve(base *url.URL, loc string) (string, error) {
	if loc == "" {
		return "", errors.New("registry returned no upload Location")
	}
	u, err := base.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("registry returned a bad upload Location: %w", err)
	}
	return u.String(), nil
}

// putBlob finishes an upload session with the whole blob as one streamed
// body (a monolithic upload): memory stays bounded by the body's buffers.
func (c *client) putBlob(ctx context.Context, location string, d v1.Hash, size int64, body io.ReadCloser) error {
	u, err := url.Parse(location)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := registryError(resp, http.StatusCreated); err != nil {
		return err
	}
	c.journal.done(location)
	return nil
}

// cancelUpload ends an unfinished upload session so nothing half-done is
// left behind: in a swift region by deleting its objects (distribution's
// own cancel leaves a hash state in the storage; the journal deletes them
// once more after the registry stopped, in case it was still writing),
// elsewhere by DELETE, after which its record goes (also when the
// registry refuses: it is named in a warning). A session that could not
// be cancelled otherwise is cancelled by the next run.
func (c *client) cancelUpload(location string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if c.st == nil {
		switch err := c.deleteUpload(ctx, location); {
		case errors.Is(err, errUploadStuck):
			c.journal.stuck(location)
		case err == nil:
			c.journal.done(location)
		}
		return
	}
	repo, uuid := locationSession(location)
	if store, err := c.st.objects(ctx); err == nil {
		_ = store.deleteUpload(ctx, repo, uuid, c.journal.record(location).Digest)
	}
}

// putManifest uploads a manifest under ref (a digest or a tag).
func (c *client) putManifest(ctx context.Context, repo, ref, mediaType string, raw []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url(repo, "manifests", ref), bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return registryError(resp, http.StatusCreated)
}

// manifest sends a HEAD or GET for the manifest ref in repo, accepting
// every manifest type push-registry copies.
func (c *client) manifest(ctx context.Context, method, repo, ref string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(repo, "manifests", ref), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestAccepts)
	return c.do(req)
}

// headManifest returns the digest ref resolves to, or "" if unknown.
func (c *client) headManifest(ctx context.Context, repo, ref string) (string, error) {
	resp, err := c.manifest(ctx, http.MethodHead, repo, ref)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		d := resp.Header.Get("Docker-Content-Digest")
		if d == "" {
			return "", errors.New("registry sent no Docker-Content-Digest")
		}
		return d, nil
	case http.StatusNotFound:
		return "", nil
	}
	return "", registryError(resp)
}

// getManifest reads a manifest; nil if unknown.
func (c *client) getManifest(ctx context.Context, repo, ref string) ([]byte, error) {
	resp, err := c.manifest(ctx, http.MethodGet, repo, ref)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			return nil, fmt.Errorf("reading manifest %s: %w", ref, err)
		}
		return raw, nil
	case http.StatusNotFound:
		return nil, nil
	}
	return nil, registryError(resp)
}

// openBlob GETs a blob's content; the caller closes it.
func (c *client) openBlob(ctx context.Context, repo string, d v1.Hash) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(repo, "blobs", d.String()), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if err := registryError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp.Body, nil
}
