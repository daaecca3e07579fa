// Package osauth authenticates to OpenStack the way the openstack CLI does
// (clouds.yaml + OS_CLOUD, or OS_* variables, with passwords or application
// credentials), for every stage that talks to an OpenStack API. Clients it
// returns re-authenticate when their token expires and retry idempotent
// requests on 5xx and connection errors.
package osauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

// Options say where and as whom to authenticate. Either Cloud names an entry
// of a clouds.yaml file (explicit fields then override it), or AuthURL and
// credentials are given directly.
type Options struct {
	// Cloud is the clouds.yaml entry (OS_CLOUD).
	Cloud string
	// CloudsFile is the clouds.yaml path (OS_CLIENT_CONFIG_FILE). Default:
	// ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml.
	CloudsFile string

	AuthURL           string
	Username, UserID  string
	UserDomainName    string
	UserDomainID      string
	Password          logging.Secret
	ProjectName       string
	ProjectID         string
	ProjectDomainName string
	ProjectDomainID   string

	AppCredID, AppCredName string
	AppCredSecret          logging.Secret

	// Region selects the catalog endpoints (OS_REGION_NAME).
	Region string
	// Interface is public, internal or admin (OS_INTERFACE). Default public.
	Interface string
	// CACert is a PEM bundle trusted for TLS (OS_CACERT).
	CACert string
	// Insecure skips TLS verification. For test clouds only.
	Insecure bool

	// Stage names the calling binary in the User-Agent header.
	Stage string
	// Retry is the retry policy for idempotent requests. Default
	// httpx.DefaultRetry().
	Retry *httpx.RetryPolicy
}

// Session is an authenticated OpenStack provider plus the endpoint
// selection (region, interface) to use for services.
type Session struct {
	Provider *gophercloud.ProviderClient
	Endpoint gophercloud.EndpointOpts
	// AuthURL is the identity endpoint used, for messages.
	AuthURL string
}

// ErrNoCredentials means neither a cloud nor an auth URL was given.
var ErrNoCredentials = errors.New("no OpenStack credentials: set OS_CLOUD (a clouds.yaml entry, with OS_CLIENT_CONFIG_FILE for its path) or OS_AUTH_URL with OS_USERNAME/OS_PASSWORD or OS_APPLICATION_CREDENTIAL_ID/OS_APPLICATION_CREDENTIAL_SECRET")

// resolve turns opts into gophercloud options. Every error is a usage error:
// the user must fix a file, a variable or a flag.
func resolve(opts Options) (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tls.Config, error) {
	var (
		ao  gophercloud.AuthOptions
		eo  gophercloud.EndpointOpts
		tc  *tls.Config
		err error
	)
	switch {
	case opts.Cloud != "":
		path, data, rerr := readClouds(opts.CloudsFile)
		if rerr != nil {
			return ao, eo, nil, usererr.Wrap(rerr)
		}
		popts := []clouds.ParseOption{
			clouds.WithCloudName(opts.Cloud), clouds.WithCloudsYAML(bytes.NewReader(data)),
			clouds.WithRegion(opts.Region), clouds.WithEndpointType(opts.Interface),
			clouds.WithCloudsPublicYAML(strings.NewReader("public-clouds: {}\n")),
		}
		if sec, err := os.ReadFile(filepath.Join(filepath.Dir(path), "secure.yaml")); err == nil {
			popts = append(popts, clouds.WithSecureYAML(bytes.NewReader(sec)))
		}
		if opts.CACert != "" {
			popts = append(popts, clouds.WithCACertPath(opts.CACert))
		}
		if opts.Insecure {
			popts = append(popts, clouds.WithInsecure(true))
		}
		overrides := []struct {
			v string
			f func(string) clouds.ParseOption
		}{
			{opts.AuthURL, clouds.WithIdentityEndpoint}, {opts.Username, clouds.WithUsername}, {opts.UserID, clouds.WithUserID},
			{opts.Password.Reveal(), clouds.WithPassword}, {opts.ProjectName, clouds.WithProjectName}, {opts.ProjectID, clouds.WithProjectID},
			{opts.AppCredID, clouds.WithApplicationCredentialID}, {opts.AppCredName, clouds.WithApplicationCredentialName},
			{opts.AppCredSecret.Reveal(), clouds.WithApplicationCredentialSecret},
		}
		for _, o := range overrides {
			if o.v != "" {
				popts = append(popts, o.f(o.v))
			}
		}
		ao, eo, tc, err = clouds.Parse(popts...)
		if err != nil {
			return ao, eo, nil, usererr.Errorf("cloud %q in %s: %w", opts.Cloud, path, err)
		}
		if ao.IdentityEndpoint == "" {
			return ao, eo, nil, usererr.Errorf("cloud %q in %s: auth.auth_url is missing", opts.Cloud, path)
		}
	case opts.AuthURL != "":
		ao = gophercloud.AuthOptions{
			IdentityEndpoint: opts.AuthURL, Username: opts.Username, UserID: opts.UserID,
			Password: opts.Password.Reveal(), DomainName: opts.UserDomainName, DomainID: opts.UserDomainID,
			ApplicationCredentialID: opts.AppCredID, ApplicationCredentialName: opts.AppCredName,
			ApplicationCredentialSecret: opts.AppCredSecret.Reveal(),
		}
		if ao.ApplicationCredentialSecret == "" {
			switch {
			case opts.ProjectID != "":
				ao.Scope = &gophercloud.AuthScope{ProjectID: opts.ProjectID}
			case opts.ProjectName != "":
				ao.Scope = &gophercloud.AuthScope{ProjectName: opts.ProjectName, DomainName: opts.ProjectDomainName, DomainID: opts.ProjectDomainID}
				if ao.Scope.DomainName == "" && ao.Scope.DomainID == "" {
					ao.Scope.DomainName, ao.Scope.DomainID = opts.UserDomainName, opts.UserDomainID
				}
				if ao.Scope.DomainName == "" && ao.Scope.DomainID == "" {
					return ao, eo, nil, usererr.Errorf("OS_PROJECT_NAME %q needs its domain: set OS_PROJECT_DOMAIN_NAME (or OS_USER_DOMAIN_NAME), e.g. Default", opts.ProjectName)
				}
			}
		}
		if ao.Username != "" && ao.DomainName == "" && ao.DomainID == "" {
			return ao, eo, nil, usererr.Errorf("OS_USERNAME %q needs its domain: set OS_USER_DOMAIN_NAME (e.g. Default) or OS_USER_ID", opts.Username)
		}
		eo = gophercloud.EndpointOpts{Region: opts.Region, Availability: availability(opts.Interface)}
		tc = &tls.Config{InsecureSkipVerify: opts.Insecure} //nolint:gosec // only when asked for
		if opts.CACert != "" {
			pem, err := os.ReadFile(opts.CACert)
			if err != nil {
				return ao, eo, nil, usererr.Errorf("OS_CACERT: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return ao, eo, nil, usererr.Errorf("OS_CACERT: %s holds no PEM certificate", opts.CACert)
			}
			tc.RootCAs = pool
		}
	default:
		return ao, eo, nil, usererr.Wrap(ErrNoCredentials)
	}
	if ao.Password == "" && ao.ApplicationCredentialSecret == "" && ao.TokenID == "" {
		return ao, eo, nil, usererr.Errorf("no password or application credential secret for %s: set OS_PASSWORD or OS_APPLICATION_CREDENTIAL_SECRET (or put it in clouds.yaml/secure.yaml)", ao.IdentityEndpoint)
	}
	if ao.ApplicationCredentialSecret != "" && ao.ApplicationCredentialID == "" && ao.ApplicationCredentialName == "" {
		return ao, eo, nil, usererr.Errorf("an application credential secret needs OS_APPLICATION_CREDENTIAL_ID (or _NAME with OS_USERNAME)")
	}
	ao.AllowReauth = true
	logging.Register(ao.Password, ao.ApplicationCredentialSecret)
	return ao, eo, tc, nil
}

func availability(iface string) gophercloud.Availability {
	switch strings.TrimSuffix(iface, "URL") {
	case "internal":
		return gophercloud.AvailabilityInternal
	case "admin":
		return gophercloud.AvailabilityAdmin
	}
	return gophercloud.AvailabilityPublic
}

func readClouds(path string) (string, []byte, error) {
	candidates := []string{path}
	if path == "" {
		candidates = []string{"clouds.yaml"}
		if dir, err := os.UserConfigDir(); err == nil {
			candidates = append(candidates, filepath.Join(dir, "openstack", "clouds.yaml"))
		}
		candidates = append(candidates, "/etc/openstack/clouds.yaml")
	}
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if err == nil {
			return p, data, nil
		}
		if path != "" {
			return p, nil, fmt.Errorf("reading clouds.yaml (OS_CLIENT_CONFIG_FILE): %w", err)
		}
	}
	return "", nil, fmt.Errorf("no clouds.yaml found in %s: set OS_CLIENT_CONFIG_FILE", strings.Join(candidates, ", "))
}

// Authenticate logs in and returns a Session whose provider re-authenticates
// on token expiry. Bad options are usage errors; rejected credentials and
// unreachable endpoints are not.
func Authenticate(ctx context.Context, opts Options) (*Session, error) {
	ao, eo, tc, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	pc, err := openstack.NewClient(ao.IdentityEndpoint)
	if err != nil {
		return nil, usererr.Errorf("auth URL %q: %w", ao.IdentityEndpoint, err)
	}
	pc.HTTPClient = http.Client{Transport: Transport(tc, opts.Stage, opts.Retry), Timeout: 2 * time.Minute}
	if err := openstack.Authenticate(ctx, pc, ao); err != nil {
		who := ao.Username
		if ao.ApplicationCredentialID != "" || ao.ApplicationCredentialName != "" {
			who = "application credential " + ao.ApplicationCredentialID + ao.ApplicationCredentialName
		}
		if gophercloud.ResponseCodeIs(err, http.StatusUnauthorized) {
			return nil, fmt.Errorf("authenticating to %s as %s: the credentials were rejected (401): check the password or application credential secret and the project", ao.IdentityEndpoint, who)
		}
		return nil, fmt.Errorf("authenticating to %s as %s: %s", ao.IdentityEndpoint, who, logging.Scrub(err.Error()))
	}
	return &Session{Provider: pc, Endpoint: eo, AuthURL: ao.IdentityEndpoint}, nil
}

// ServiceClient returns a client for the service of type serviceType (with
// aliases) in the session's region, made by newClient (e.g.
// openstack.NewContainerInfraV1). A missing endpoint names the regions the
// catalog does have.
func (s *Session) ServiceClient(serviceType string, newClient func(*gophercloud.ProviderClient, gophercloud.EndpointOpts) (*gophercloud.ServiceClient, error)) (*gophercloud.ServiceClient, error) {
	sc, err := newClient(s.Provider, s.Endpoint)
	if err == nil {
		return sc, nil
	}
	regions := s.catalogRegions(serviceType)
	region := s.Endpoint.Region
	if region == "" {
		region = "(none given)"
	}
	if len(regions) == 0 {
		return nil, fmt.Errorf("the service catalog of %s has no %s endpoint: %w", s.AuthURL, serviceType, err)
	}
	return nil, usererr.Errorf("the service catalog of %s has no %s endpoint in region %s; its regions are %s: set OS_REGION_NAME", s.AuthURL, serviceType, region, strings.Join(regions, ", "))
}

func (s *Session) catalogRegions(serviceType string) []string {
	res, ok := s.Provider.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return nil
	}
	cat, err := res.ExtractServiceCatalog()
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range cat.Entries {
		if !strings.HasPrefix(e.Type, serviceType) {
			continue
		}
		for _, ep := range e.Endpoints {
			seen[ep.Region] = true
		}
	}
	var out []string
	for r := range seen {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}
