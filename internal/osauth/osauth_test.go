package osauth

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clustertemplates"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/usererr"
)

func fastRetry() *httpx.RetryPolicy {
	return &httpx.RetryPolicy{Attempts: 3, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
}

func containerInfra(t *testing.T, s *Session) *gophercloud.ServiceClient {
	t.Helper()
	sc, err := s.ServiceClient("container-infra", openstack.NewContainerInfraV1)
	if err != nil {
		t.Fatal(err)
	}
	sc.Microversion = "1.10"
	return sc
}

// freshProject makes a user in its own project on the shared emulator.
// freshSession authenticates into a fresh project and opens its Magnum client.
func freshSession(t *testing.T) (*Session, *gophercloud.ServiceClient, openstackemu.Admin, string) {
	t.Helper()
	opts, admin, project := freshProject(t)
	s, err := Authenticate(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, containerInfra(t, s), admin, project
}

func freshProject(t *testing.T) (Options, openstackemu.Admin, string) {
	t.Helper()
	env := testenv.Require(t, "SLIPWAY_TEST_OS_AUTH_URL", "SLIPWAY_TEST_OS_EMULATOR_ADMIN")
	admin := openstackemu.Admin{URL: env[1]}
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + time.Now().Format("150405.000000")
	pw := "pw-" + name + "-s3cr3t"
	if err := admin.AddUser(context.Background(), openstackemu.User{Name: name, Password: pw, Project: name}); err != nil {
		t.Fatal(err)
	}
	return Options{AuthURL: env[0], Username: name, Password: logging.Secret(pw), UserDomainName: "Default", ProjectName: name, Region: "RegionOne", Retry: fastRetry()}, admin, name
}

func TestCloudsYAML(t *testing.T) {
	env := testenv.Require(t, "SLIPWAY_TEST_OS_CLIENT_CONFIG_FILE", "SLIPWAY_TEST_OS_CLOUD", "SLIPWAY_TEST_OS_CLOUD_APPCRED")
	ctx := context.Background()
	for _, tc := range []struct {
		name, cloud, region, wantRegion string
	}{
		{"password cloud, its region", env[1], "", "RegionOne"},
		{"application credential cloud, its region", env[2], "", "RegionTwo"},
		{"region override", env[1], "RegionTwo", "RegionTwo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Authenticate(ctx, Options{Cloud: tc.cloud, CloudsFile: env[0], Region: tc.region, Retry: fastRetry()})
			if err != nil {
				t.Fatal(err)
			}
			sc := containerInfra(t, s)
			if !strings.Contains(sc.Endpoint, "/"+tc.wantRegion+"/") {
				t.Errorf("endpoint %s is not in region %s", sc.Endpoint, tc.wantRegion)
			}
			if _, err := clusters.List(sc, nil).AllPages(ctx); err != nil {
				t.Errorf("listing clusters: %v", err)
			}
		})
	}
}

func TestEnvStyleOptions(t *testing.T) {
	env := testenv.Require(t, "SLIPWAY_TEST_OS_AUTH_URL", "SLIPWAY_TEST_OS_USERNAME", "SLIPWAY_TEST_OS_PASSWORD",
		"SLIPWAY_TEST_OS_PROJECT_NAME", "SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID", "SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_SECRET")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"password", Options{AuthURL: env[0], Username: env[1], Password: logging.Secret(env[2]), UserDomainName: "Default", ProjectName: env[3], ProjectDomainName: "Default"}},
		{"application credential", Options{AuthURL: env[0], AppCredID: env[4], AppCredSecret: logging.Secret(env[5])}},
		{"versionless auth URL", Options{AuthURL: strings.TrimSuffix(env[0], "/v3"), Username: env[1], Password: logging.Secret(env[2]), UserDomainName: "Default", ProjectName: env[3]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Region = "RegionOne"
			s, err := Authenticate(ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := clusters.List(containerInfra(t, s), nil).AllPages(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	env := testenv.Require(t, "SLIPWAY_TEST_OS_AUTH_URL", "SLIPWAY_TEST_OS_CLIENT_CONFIG_FILE")
	dir := t.TempDir()
	noAuthURL := filepath.Join(dir, "clouds.yaml")
	if err := os.WriteFile(noAuthURL, []byte("clouds:\n  x:\n    auth:\n      username: u\n      password: p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"nothing", Options{}, "no OpenStack credentials"},
		{"missing clouds.yaml", Options{Cloud: "x", CloudsFile: filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"unknown cloud", Options{Cloud: "nosuchcloud", CloudsFile: env[1]}, `cloud "nosuchcloud"`},
		{"cloud without auth_url", Options{Cloud: "x", CloudsFile: noAuthURL}, "auth_url is missing"},
		{"no password", Options{AuthURL: env[0], Username: "u", UserDomainName: "Default"}, "no password"},
		{"user without domain", Options{AuthURL: env[0], Username: "u", Password: "p1234"}, "OS_USER_DOMAIN_NAME"},
		{"project without domain", Options{AuthURL: env[0], UserID: "u", Password: "p1234", ProjectName: "p"}, "OS_PROJECT_DOMAIN_NAME"},
		{"secret without id", Options{AuthURL: env[0], AppCredSecret: "s3cr3t-value"}, "OS_APPLICATION_CREDENTIAL_ID"},
		{"unreadable CA", Options{AuthURL: env[0], UserID: "u", Password: "p1234", CACert: filepath.Join(dir, "ca.pem")}, "OS_CACERT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Authenticate(context.Background(), tc.opts)
			if !usererr.Is(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRejectedCredentialsKeepSecrets(t *testing.T) {
	env := testenv.Require(t, "SLIPWAY_TEST_OS_AUTH_URL", "SLIPWAY_TEST_OS_USERNAME", "SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID")
	for _, opts := range []Options{
		{AuthURL: env[0], Username: env[1], Password: "wrong-password-9f8e7d", UserDomainName: "Default", ProjectName: "slipway"},
		{AuthURL: env[0], AppCredID: env[2], AppCredSecret: "wrong-secret-1a2b3c"},
	} {
		_, err := Authenticate(context.Background(), opts)
		if err == nil || usererr.Is(err) {
			t.Fatalf("err = %v, want a (non-usage) authentication failure", err)
		}
		for _, secret := range []string{opts.Password.Reveal(), opts.AppCredSecret.Reveal()} {
			if secret != "" && strings.Contains(err.Error(), secret) {
				t.Errorf("error reveals the secret: %v", err)
			}
		}
		if !strings.Contains(err.Error(), "rejected (401)") {
			t.Errorf("error does not say what happened: %v", err)
		}
	}
}

func TestUnknownRegionNamesTheCatalogRegions(t *testing.T) {
	opts, _, _ := freshProject(t)
	opts.Region = "Atlantis"
	s, err := Authenticate(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.ServiceClient("container-infra", openstack.NewContainerInfraV1)
	if !usererr.Is(err) || !strings.Contains(err.Error(), "Atlantis") || !strings.Contains(err.Error(), "RegionOne, RegionTwo") {
		t.Fatalf("err = %v", err)
	}
}

func TestReauthenticatesWhenTheTokenExpires(t *testing.T) {
	s, sc, admin, project := freshSession(t)
	ctx := context.Background()
	before := s.Provider.Token()
	if err := admin.ExpireTokens(ctx, project); err != nil {
		t.Fatal(err)
	}
	if _, err := clusters.List(sc, nil).AllPages(ctx); err != nil {
		t.Fatalf("listing after the token expired: %v", err)
	}
	if s.Provider.Token() == before {
		t.Error("the token did not change: no re-authentication happened")
	}
}

func TestRetriesOnlyIdempotentRequests(t *testing.T) {
	_, sc, admin, project := freshSession(t)
	ctx := context.Background()
	if err := admin.Inject(ctx, openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Project: project, Method: "GET", Status: 503, Count: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := clusters.List(sc, nil).AllPages(ctx); err != nil {
		t.Fatalf("GET after two 503s should succeed on the third try: %v", err)
	}
	if err := admin.Inject(ctx, openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Project: project, Method: "POST", Status: 503}); err != nil {
		t.Fatal(err)
	}
	_, err := clustertemplates.Create(ctx, sc, clustertemplates.CreateOpts{Name: "t", COE: "kubernetes", ImageID: "fcos"}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusServiceUnavailable) {
		t.Fatalf("POST with an injected 503: err = %v, want the 503 (no retry)", err)
	}
	// The fault fired once; had the POST been retried, a template would exist.
	pages, err := clustertemplates.List(sc, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := clustertemplates.ExtractClusterTemplates(pages); len(list) != 0 {
		t.Fatalf("the POST was retried: %d templates", len(list))
	}
}

// TestCACert uses an in-process emulator behind TLS: the shared one is plain
// HTTP, and only TLS can show that OS_CACERT is honoured.
func TestCACert(t *testing.T) {
	emu, err := openstackemu.New(openstackemu.Options{Users: []openstackemu.User{{Name: "u", Password: "pw-tls", Project: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(emu.Handler())
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{AuthURL: srv.URL + "/identity/v3", Username: "u", Password: "pw-tls", UserDomainName: "Default", ProjectName: "p", Retry: fastRetry()}
	if _, err := Authenticate(context.Background(), opts); err == nil {
		t.Fatal("authenticated to a server with an unknown CA without OS_CACERT")
	}
	opts.CACert = ca
	s, err := Authenticate(context.Background(), opts)
	if err != nil {
		t.Fatalf("with OS_CACERT: %v", err)
	}
	if _, err := clusters.List(containerInfra(t, s), nil).AllPages(context.Background()); err != nil {
		t.Fatal(err)
	}
}
