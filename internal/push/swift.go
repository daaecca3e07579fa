package push

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/swauth"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

// Swift is the Swift storage of a region's node registries, with the keys
// Magnum writes into their distribution config (storage.swift). The
// credentials (password, trust ID) are never read from here: they come
// from the secrets file or the environment (SwiftCredential).
type Swift struct {
	// AuthURL is the Keystone v3 URL (https://keystone.example:5000/v3).
	AuthURL string `yaml:"authurl"`
	// AuthVersion is the Keystone API version (default: from the URL). 1 is
	// Swift's own tempauth, for test clouds.
	AuthVersion int `yaml:"authversion"`
	// Region selects the object-store endpoint of the catalog.
	Region string `yaml:"region"`
	// Container holds the registry's objects.
	Container string `yaml:"container"`
	// Prefix is a path inside the container, as the node registries use it.
	Prefix string `yaml:"prefix"`
	// Username is the Keystone user (Magnum's trustee); may also come with
	// the credentials.
	Username string `yaml:"username"`
	// Domain and DomainID are the user's domain.
	Domain   string `yaml:"domain"`
	DomainID string `yaml:"domainid"`
	// Tenant and TenantID are the project; TenantDomain and TenantDomainID
	// its domain. A trust ID (a credential) scopes the token instead.
	Tenant         string `yaml:"tenant"`
	TenantID       string `yaml:"tenantid"`
	TenantDomain   string `yaml:"tenantdomain"`
	TenantDomainID string `yaml:"tenantdomainid"`
	// ChunkSize is the segment size of large objects (distribution default
	// 20 MiB; Magnum writes 5242880).
	ChunkSize int64 `yaml:"chunksize"`
	// InsecureSkipVerify skips TLS verification of Keystone and Swift.
	InsecureSkipVerify bool `yaml:"insecureskipverify"`
	// CAFile is a PEM bundle trusted for Keystone's and Swift's TLS.
	CAFile string `yaml:"cafile"`

	// Password and TrustID are refused: a targets file is not a secret.
	Password logging.Secret `yaml:"password"`
	TrustID  logging.Secret `yaml:"trustid"`
}

// minChunkSize is distribution's smallest Swift segment size.
const minChunkSize = 1 << 20

// problem returns the first wrong field of s (below swift.) and why.
func (s *Swift) problem(region string) (field, msg string) {
	u, err := url.Parse(s.AuthURL)
	switch {
	case s.AuthURL == "":
		return "authurl", "the Keystone auth URL is empty (give e.g. https://keystone.example:5000/v3)"
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "authurl", fmt.Sprintf("%q is not an http(s) URL (give e.g. https://keystone.example:5000/v3)", s.AuthURL)
	case s.AuthVersion < 0 || s.AuthVersion > 3:
		return "authversion", fmt.Sprintf("%d is not a Keystone API version (1: tempauth, 2 or 3; default: from the URL)", s.AuthVersion)
	case s.Container == "":
		return "container", "the container is empty (give the container of the node registries, e.g. docker_registry)"
	case strings.Contains(s.Container, "/"):
		return "container", fmt.Sprintf("container %q has a / (a Swift container name has none)", s.Container)
	case s.ChunkSize != 0 && s.ChunkSize < minChunkSize:
		return "chunksize", fmt.Sprintf("%d is below %d, the smallest segment distribution accepts", s.ChunkSize, minChunkSize)
	case !s.Password.Empty():
		return "password", fmt.Sprintf("a credential is not read from the targets file (give it as swift_credentials.%s.password in the secrets file, or %sPASSWORD)", region, swiftEnvPrefix(region))
	case !s.TrustID.Empty():
		return "trustid", fmt.Sprintf("a credential is not read from the targets file (give it as swift_credentials.%s.trustid in the secrets file, or %sTRUSTID)", region, swiftEnvPrefix(region))
	}
	return "", ""
}

func (r Region) swiftCAFile() string {
	if r.Swift == nil {
		return ""
	}
	return r.Swift.CAFile
}

// SwiftCredential is the Keystone login of a storage-backed region: the
// trustee user Magnum creates (password and trust ID), or a plain user.
type SwiftCredential struct {
	Username string         `yaml:"username"`
	Password logging.Secret `yaml:"password"`
	TrustID  logging.Secret `yaml:"trustid"`
	// From says where it came from, for logs.
	From string `yaml:"-"`
}

func swiftEnvPrefix(region string) string {
	return "SLIPWAY_SWIFT_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(region)) + "_"
}

// swiftCredential resolves the Keystone login of a storage-backed region:
// the secrets file (swift_credentials.REGION), else the environment
// (SLIPWAY_SWIFT_<REGION>_USERNAME, _PASSWORD, _TRUSTID). The user name may
// come from the targets file. A missing password is a usage error at the
// region's place in its targets file.
func (a *Auth) swiftCredential(r Region) (SwiftCredential, error) {
	c, ok := a.swift[r.Name]
	if !ok && a.Env != nil {
		p := swiftEnvPrefix(r.Name)
		u, _ := a.Env(p + "USERNAME")
		pw, _ := a.Env(p + "PASSWORD")
		trust, _ := a.Env(p + "TRUSTID")
		logging.Register(pw, trust)
		c = SwiftCredential{Username: u, Password: logging.Secret(pw), TrustID: logging.Secret(trust), From: "environment " + p + "*"}
	}
	if c.Username == "" {
		c.Username = r.Swift.Username
	}
	var missing string
	switch {
	case c.Password.Empty():
		missing = "no Swift password"
	case c.Username == "":
		missing = "no Swift user name"
	}
	if missing == "" {
		return c, nil
	}
	at := r.at
	if at.Field == "" {
		at.Field = "region " + r.Name
	}
	p := swiftEnvPrefix(r.Name)
	at.Msg = fmt.Sprintf("%s for region %s (give swift_credentials.%s: {username, password, trustid} in the secrets file, or %sUSERNAME and %sPASSWORD; username may also be swift.username)", missing, r.Name, r.Name, p, p)
	return SwiftCredential{}, &at
}

// registryConfig returns the storage.swift section of a distribution
// config for this storage and login.
func (s *Swift) registryConfig(c SwiftCredential) map[string]any {
	m := map[string]any{
		"authurl":   s.AuthURL,
		"username":  c.Username,
		"password":  c.Password.Reveal(),
		"container": s.Container,
	}
	for k, v := range map[string]string{
		"region": s.Region, "prefix": s.Prefix, "domain": s.Domain, "domainid": s.DomainID,
		"tenant": s.Tenant, "tenantid": s.TenantID, "tenantdomain": s.TenantDomain,
		"tenantdomainid": s.TenantDomainID, "trustid": c.TrustID.Reveal(),
	} {
		if v != "" {
			m[k] = v
		}
	}
	if s.AuthVersion != 0 {
		m["authversion"] = s.AuthVersion
	}
	if s.ChunkSize != 0 {
		m["chunksize"] = s.ChunkSize
	}
	if s.InsecureSkipVerify {
		m["insecureskipverify"] = true
	}
	return m
}

// objectStore deletes the Swift objects of a storage-backed region's blobs:
// distribution never replaces a blob it believes it has, so a damaged one
// must leave the storage before it can be pushed again.
type objectStore struct {
	sc        *gophercloud.ServiceClient
	container string
	prefix    string
}

// newObjectStore logs in to the region's Swift the way its registry does.
func newObjectStore(ctx context.Context, r Region, c SwiftCredential, retry httpx.RetryPolicy, timeout time.Duration) (*objectStore, error) {
	s := r.Swift
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify} //nolint:gosec // the user's choice, as in the node registries
	if s.CAFile != "" {
		pool, err := httpx.CertPool(s.CAFile)
		if err != nil {
			return nil, usererr.Errorf("region %s: swift.cafile: %w", r.Name, err)
		}
		tc.RootCAs = pool
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc
	pc, err := openstack.NewClient(s.AuthURL)
	if err != nil {
		return nil, usererr.Errorf("region %s: swift.authurl %q: %w", r.Name, s.AuthURL, err)
	}
	pc.HTTPClient = http.Client{Transport: httpx.UserAgent(httpx.Retry(t, retry), "push-registry"), Timeout: timeout}
	var sc *gophercloud.ServiceClient
	if s.AuthVersion == 1 {
		sc, err = swauth.NewObjectStorageV1(ctx, pc, swauth.AuthOpts{User: c.Username, Key: c.Password.Reveal()})
	} else {
		ao := gophercloud.AuthOptions{
			IdentityEndpoint: s.AuthURL, Username: c.Username, Password: c.Password.Reveal(),
			DomainName: s.Domain, DomainID: s.DomainID, AllowReauth: true,
		}
		switch {
		case !c.TrustID.Empty():
			ao.Scope = &gophercloud.AuthScope{TrustID: c.TrustID.Reveal()}
		case s.TenantID != "":
			ao.Scope = &gophercloud.AuthScope{ProjectID: s.TenantID}
		case s.Tenant != "":
			ao.Scope = &gophercloud.AuthScope{ProjectName: s.Tenant, DomainName: s.TenantDomain, DomainID: s.TenantDomainID}
		}
		if err = openstack.Authenticate(ctx, pc, ao); err == nil {
			sc, err = openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: s.Region})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("region %s: logging in to Swift at %s as %s: %s", r.Name, s.AuthURL, c.Username, logging.Scrub(err.Error()))
	}
	return &objectStore{sc: sc, container: s.Container, prefix: strings.Trim(s.Prefix, "/")}, nil
}

// blobObject is the Swift object of a blob's data in distribution's layout.
func (o *objectStore) blobObject(d v1.Hash) string {
	p := "files/" + storagePath(d)
	if o.prefix != "" {
		p = o.prefix + "/" + p
	}
	return p
}

// deleteBlob removes the stored data of blob d: its object and, for a
// large object, its segments. What is already gone counts as removed.
func (o *objectStore) deleteBlob(ctx context.Context, d v1.Hash) error {
	return o.deleteObject(ctx, o.blobObject(d), "")
}

// head returns the headers of obj in the container, nil when it is gone.
func (o *objectStore) head(ctx context.Context, obj string) (*objects.GetHeader, error) {
	h, err := objects.Get(ctx, o.sc, o.container, obj, nil).Extract()
	if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading object %s/%s: %s", o.container, obj, logging.Scrub(err.Error()))
	}
	return h, nil
}

// list names the objects of container below prefix.
func (o *objectStore) list(ctx context.Context, container, prefix string) ([]string, error) {
	var names []string
	err := objects.List(o.sc, container, objects.ListOpts{Prefix: prefix}).EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
		n, err := objects.ExtractNames(page)
		names = append(names, n...)
		return true, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s/%s: %s", container, prefix, logging.Scrub(err.Error()))
	}
	return names, nil
}

// deleteObject removes obj and, for a large object, its segments, unless
// they are those of the large object keep (CONTAINER/PREFIX) too. What is
// already gone counts as removed.
func (o *objectStore) deleteObject(ctx context.Context, obj, keep string) error {
	h, err := o.head(ctx, obj)
	if err != nil || h == nil {
		return err
	}
	if h.ObjectManifest != "" && h.ObjectManifest != keep {
		container, prefix, _ := strings.Cut(h.ObjectManifest, "/")
		segs, err := o.list(ctx, container, prefix)
		if err != nil {
			return fmt.Errorf("segments: %w", err)
		}
		for _, seg := range segs {
			if err := ignoreNotFound(objects.Delete(ctx, o.sc, container, seg, nil).Err); err != nil {
				return fmt.Errorf("deleting segment %s/%s: %s", container, seg, logging.Scrub(err.Error()))
			}
		}
	}
	if err := ignoreNotFound(objects.Delete(ctx, o.sc, o.container, obj, nil).Err); err != nil {
		return fmt.Errorf("deleting object %s/%s: %s", o.container, obj, logging.Scrub(err.Error()))
	}
	return nil
}

func ignoreNotFound(err error) error {
	if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// storage is what a run holds for a storage-backed region: the registry it
// runs there, and the Swift login to repair blobs with.
type storage struct {
	region Region
	cred   SwiftCredential
	reg    *localRegistry
	conn   *Conn

	once  sync.Once
	store *objectStore
	err   error
}

// objects logs in to the region's Swift (once, when a repair needs it).
func (s *storage) objects(ctx context.Context) (*objectStore, error) {
	s.once.Do(func() {
		s.store, s.err = newObjectStore(ctx, s.region, s.cred, *s.conn.Retry, s.conn.RequestTimeout)
	})
	return s.store, s.err
}

// swiftLogins resolves the Keystone login of every storage-backed region
// before any work, so a missing one is bad input and nothing moves.
func swiftLogins(regions []Region, a *Auth) (map[string]SwiftCredential, error) {
	out := map[string]SwiftCredential{}
	for _, r := range regions {
		if !r.storage() {
			continue
		}
		c, err := a.swiftCredential(r)
		if err != nil {
			return nil, err
		}
		out[r.Name] = c
	}
	return out, nil
}

// openStorage stops what killed runs left behind, then starts a registry
// on every storage-backed region's Swift, in parallel. It returns the
// regions with those registries' addresses, the storage by region name,
// and stop, which ends the registries (call it on every path).
func openStorage(ctx context.Context, conn *Conn, log *slog.Logger, regions []Region, logins map[string]SwiftCredential) ([]Region, map[string]*storage, func(), error) {
	out := slices.Clone(regions)
	byName := map[string]*storage{}
	if len(logins) == 0 {
		return out, byName, func() {}, nil
	}
	sweepRegistries(conn.StateDir, log)
	var mu sync.Mutex
	stop := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = fanout.All(context.Background(), 0, slices.Collect(maps.Values(byName)), func(_ context.Context, _ int, s *storage) error {
			s.reg.stop()
			return nil
		})
		clear(byName)
	}
	err := fanout.All(ctx, 0, out, func(ctx context.Context, i int, r Region) error {
		c, ok := logins[r.Name]
		if !ok {
			return nil
		}
		reg, err := startRegistry(ctx, conn, log, r, c)
		if err != nil {
			return err
		}
		mu.Lock()
		byName[r.Name] = &storage{region: r, cred: c, reg: reg, conn: conn}
		mu.Unlock()
		out[i].Registry = reg.addr
		return nil
	})
	if err != nil {
		stop()
		return nil, nil, func() {}, fmt.Errorf("%w; nothing was pushed", err)
	}
	crashpoint.Hit("push.storage-open")
	return out, byName, stop, nil
}
