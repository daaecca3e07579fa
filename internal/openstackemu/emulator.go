// Package openstackemu is a test fixture that emulates the parts of OpenStack
// slipway talks to: Keystone v3 tokens (issued, validated for a service such
// as Swift's auth_token middleware, revoked), roles and the service catalog
// with its API (so Swift registers its object-store endpoints), and the Magnum
// (container-infra) v1 API with clusters that change status over time, a
// certificates API backed by a real CA, and injectable failures. Product code
// never imports it; tests and test/openstack-emulator do.
package openstackemu

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure an Emulator. The zero value is usable: one region
// "RegionOne", the user "demo" with password "secret" in project "demo",
// clusters that take a few seconds per operation, a generated CA.
type Options struct {
	// Regions each get their own Magnum endpoint and their own resources.
	Regions []string
	// Users that can authenticate. Default: one user "demo".
	Users []User
	// TokenTTL is how long an issued token is valid. Default 1h.
	TokenTTL time.Duration
	// CreateDuration, UpdateDuration and DeleteDuration are how long a
	// cluster stays *_IN_PROGRESS. Defaults 3s, 2s, 1s.
	CreateDuration, UpdateDuration, DeleteDuration time.Duration
	// MinMicroversion and MaxMicroversion bound the container-infra
	// microversions served. Defaults "1.1" and "1.10" (Magnum Wallaby–Yoga,
	// the release line that runs Kubernetes v1.21 clusters).
	MinMicroversion, MaxMicroversion string
	// UpgradeUnsupported makes actions/upgrade answer 400 NotSupported, as
	// Magnum does since it dropped in-place upgrades for the Heat driver.
	UpgradeUnsupported bool
	// APIAddress is the api_address of every created cluster, e.g. the URL
	// of a real kube-apiserver. Default: a made-up https://172.24.4.N:6443.
	APIAddress string
	// CACert and CAKey sign cluster certificates. Default: a generated CA.
	CACert *x509.Certificate
	CAKey  crypto.Signer
	// Sites override APIAddress and the CA for the clusters of one region
	// (keyed by region name), so that each region's clusters are a
	// different Kubernetes control plane with its own CA.
	Sites map[string]Site
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives one line per request. Default: discard.
	Logger *slog.Logger
}

// Site is one region's Kubernetes: what its clusters' api_address is and
// which CA signs their certificates. Empty fields take Options' values.
type Site struct {
	APIAddress string
	CACert     *x509.Certificate
	CAKey      crypto.Signer
}

// site returns the Kubernetes of region name, defaults filled in.
func (e *Emulator) site(name string) Site {
	s := e.opts.Sites[name]
	if s.APIAddress == "" {
		s.APIAddress = e.opts.APIAddress
	}
	if s.CACert == nil {
		s.CACert, s.CAKey = e.opts.CACert, e.opts.CAKey
	}
	return s
}

// User is a Keystone user with its project, its roles on that project and,
// optionally, an application credential.
type User struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Project  string `json:"project"`
	// Domain of the user and the project. Default "Default".
	Domain string `json:"domain,omitempty"`
	// Roles the user has on its project. Default member and reader. "admin"
	// may manage the catalog and, like "service" (a service user such as
	// the one Swift's auth_token middleware logs in with), validate any
	// user's token.
	Roles []string `json:"roles,omitempty"`
	// AppCredID, AppCredName and AppCredSecret define an application
	// credential of this user, scoped to its project.
	AppCredID     string `json:"application_credential_id,omitempty"`
	AppCredName   string `json:"application_credential_name,omitempty"`
	AppCredSecret string `json:"application_credential_secret,omitempty"`

	id, projectID string
}

// Emulator is an in-memory Keystone v3 + Magnum v1. It is safe for
// concurrent use; serve it with Handler.
type Emulator struct {
	opts     Options
	min, max microversion
	log      *slog.Logger

	mu      sync.Mutex
	users   []*User
	tokens  map[string]*token
	regions map[string]*region
	faults  []*Fault
	seq     int
	// services is the service catalog, in the order it is listed.
	services []*service
	trusts   map[string]*trust
}

type token struct {
	user      *User
	expires   time.Time
	method    string
	appCredID string
	// trust is set for a trust-scoped token: user is the trustee, the
	// project and roles are the trust's.
	trust *trust
}

// project returns the user whose project the token is scoped to.
func (t *token) project() *User {
	if t.trust != nil {
		return t.trust.trustor
	}
	return t.user
}

type region struct {
	name      string
	templates []*clusterTemplate
	clusters  []*cluster
}

// New returns an Emulator with opts applied.
func New(opts Options) (*Emulator, error) {
	if len(opts.Regions) == 0 {
		opts.Regions = []string{"RegionOne"}
	}
	if len(opts.Users) == 0 {
		opts.Users = []User{{Name: "demo", Password: "secret", Project: "demo"}}
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.CreateDuration == 0 {
		opts.CreateDuration = 3 * time.Second
	}
	if opts.UpdateDuration == 0 {
		opts.UpdateDuration = 2 * time.Second
	}
	if opts.DeleteDuration == 0 {
		opts.DeleteDuration = time.Second
	}
	if opts.MinMicroversion == "" {
		opts.MinMicroversion = "1.1"
	}
	if opts.MaxMicroversion == "" {
		opts.MaxMicroversion = "1.10"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Emulator{opts: opts, log: opts.Logger, tokens: map[string]*token{}, regions: map[string]*region{}, trusts: map[string]*trust{}}
	var err error
	if e.min, err = parseMicroversion(opts.MinMicroversion); err != nil {
		return nil, fmt.Errorf("min microversion: %w", err)
	}
	if e.max, err = parseMicroversion(opts.MaxMicroversion); err != nil {
		return nil, fmt.Errorf("max microversion: %w", err)
	}
	if (opts.CACert == nil) != (opts.CAKey == nil) {
		return nil, fmt.Errorf("CACert and CAKey go together: set both or neither")
	}
	if opts.CACert == nil {
		if e.opts.CACert, e.opts.CAKey, err = generateCA(opts.Now()); err != nil {
			return nil, err
		}
	}
	for name, site := range opts.Sites {
		if (site.CACert == nil) != (site.CAKey == nil) {
			return nil, fmt.Errorf("site %s: CACert and CAKey go together: set both or neither", name)
		}
		if !slices.Contains(opts.Regions, name) {
			return nil, fmt.Errorf("site %s is not one of the regions %v", name, opts.Regions)
		}
	}
	for _, r := range opts.Regions {
		e.regions[r] = &region{name: r}
	}
	e.services = builtinServices(opts.Regions)
	for _, u := range opts.Users {
		if _, err := e.AddUser(u); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// AddUser adds a user (and its project) and returns it with defaults filled.
func (e *Emulator) AddUser(u User) (User, error) {
	if u.Name == "" || u.Project == "" {
		return User{}, fmt.Errorf("a user needs a name and a project")
	}
	if u.Domain == "" {
		u.Domain = "Default"
	}
	if len(u.Roles) == 0 {
		u.Roles = []string{"member", "reader"}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range e.users {
		if o.Name == u.Name && o.Domain == u.Domain {
			return User{}, fmt.Errorf("user %s already exists", u.Name)
		}
	}
	u.id = e.newID()
	u.projectID = projectID(u.Project)
	e.users = append(e.users, &u)
	return u, nil
}

func (u *User) hasRole(name string) bool { return contains(u.Roles, name) }

func (u *User) roleRefs() []any { return roleRefs(u.Roles) }

// roleRefs lists roles as a token shows them; a role's id is derived from
// its name, so it is the same in every token.
func roleRefs(roles []string) []any {
	refs := make([]any, len(roles))
	for i, name := range roles {
		refs[i] = map[string]any{"id": projectID("role:" + name), "name": name}
	}
	return refs
}

// CA returns the certificate that signs cluster certificates.
func (e *Emulator) CA() *x509.Certificate { return e.opts.CACert }

// ExpireTokens makes every token issued so far for project (all projects if
// empty) invalid, as if its lifetime ran out.
func (e *Emulator) ExpireTokens(project string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, t := range e.tokens {
		if project == "" || t.project().Project == project {
			t.expires = e.opts.Now().Add(-time.Second)
			n++
		}
	}
	return n
}

// Handler serves Keystone under /identity/v3, Magnum under
// /magnum/<region>/v1 and the fault-injection API under /admin.
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/identity/", e.serveKeystone)
	mux.HandleFunc("/magnum/", e.serveMagnum)
	mux.HandleFunc("/admin/", e.serveAdmin)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"identity": baseURL(r) + "/identity/v3", "admin": baseURL(r) + "/admin"})
	})
	return logRequests(e.log, mux)
}

func logRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		start := time.Now()
		h.ServeHTTP(sw, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start).Round(time.Microsecond))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// newID returns a random UUID (version 4 layout). Called with e.mu held or not.
func (e *Emulator) newID() string { return newUUID() }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// projectID derives a stable Keystone-style id (32 hex chars) from a name so
// that ids survive emulator restarts.
func projectID(name string) string {
	h := fnv64(name)
	return fmt.Sprintf("%016x%016x", h, fnv64(name+"#"))
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func generateCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "openstack-emulator-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signing CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// microversion is a container-infra API microversion such as 1.10.
type microversion struct{ major, minor int }

func parseMicroversion(s string) (microversion, error) {
	var v microversion
	maj, min, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok {
		return v, fmt.Errorf("microversion %q is not MAJOR.MINOR", s)
	}
	if _, err := fmt.Sscanf(maj+" "+min, "%d %d", &v.major, &v.minor); err != nil {
		return v, fmt.Errorf("microversion %q is not MAJOR.MINOR", s)
	}
	if fmt.Sprintf("%d.%d", v.major, v.minor) != strings.TrimSpace(s) {
		return v, fmt.Errorf("microversion %q is not MAJOR.MINOR", s)
	}
	return v, nil
}

func (v microversion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

func (v microversion) less(o microversion) bool {
	return v.major < o.major || v.major == o.major && v.minor < o.minor
}
