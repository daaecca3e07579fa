package openstackemu

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/catalog"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/endpoints"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/services"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/trusts"
)

// keystoneUsers: alice (member, reader) as in every fixture, Swift's service
// user and a catalog admin.
func keystoneUsers() []User {
	return []User{
		{Name: "alice", Password: "pw-alice", Project: "edx"},
		{Name: "bob", Password: "pw-bob", Project: "edx"},
		{Name: "swift", Password: "pw-swift", Project: "service", Roles: []string{"admin", "service"}},
		{Name: "validator", Password: "pw-validator", Project: "service", Roles: []string{"service"}},
	}
}

// identity returns an identity v3 client logged in as user (password
// pw-USER, project of the user in keystoneUsers).
func (f *fixture) identity(t *testing.T, user string) *gophercloud.ServiceClient {
	t.Helper()
	project := ""
	for _, u := range keystoneUsers() {
		if u.Name == user {
			project = u.Project
		}
	}
	pc, err := openstack.AuthenticatedClient(context.Background(), gophercloud.AuthOptions{
		IdentityEndpoint: f.srv.URL + "/identity/v3", Username: user, Password: "pw-" + user, DomainName: "Default", TenantName: project,
	})
	if err != nil {
		t.Fatalf("authenticating %s: %v", user, err)
	}
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	return ic
}

// TestTokenValidation checks GET/HEAD /v3/auth/tokens as auth_token uses
// them: who may validate whose token, revoked, expired and unknown tokens,
// allow_expired and nocatalog.
func TestTokenValidation(t *testing.T) {
	f := newFixture(t, Options{Users: keystoneUsers(), TokenTTL: time.Hour})
	ctx := context.Background()
	clients := map[string]*gophercloud.ServiceClient{}
	for _, u := range []string{"alice", "bob", "swift", "validator"} {
		clients[u] = f.identity(t, u)
	}
	alice := clients["alice"].TokenID
	revoked := f.identity(t, "alice").TokenID
	if err := tokens.Revoke(ctx, clients["alice"], revoked).Err; err != nil {
		t.Fatalf("revoking a token: %v", err)
	}
	get := func(caller, subject, query string) int {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/identity/v3/auth/tokens"+query, nil)
		req.Header.Set("X-Auth-Token", caller)
		req.Header.Set("X-Subject-Token", subject)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, caller, subject string
		want                  int
	}{
		{"a token checks itself", "alice", alice, 200},
		{"the service user checks a user's token", "swift", alice, 200},
		{"the service role alone is enough", "validator", alice, 200},
		{"another member may not", "bob", alice, 403},
		{"a revoked token is gone", "swift", revoked, 404},
		{"an unknown token", "swift", "gAAAAAnot-a-token", 404},
		{"no caller token", "", alice, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller := ""
			if tc.caller != "" {
				caller = clients[tc.caller].TokenID
			}
			if got := get(caller, tc.subject, ""); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}

	// What auth_token reads from a validated token.
	res := tokens.Get(ctx, clients["swift"], alice)
	if id, err := res.ExtractTokenID(); err != nil || id != alice {
		t.Fatalf("X-Subject-Token = %q (%v), want the subject token", id, err)
	}
	project, err := res.ExtractProject()
	if err != nil || project.Name != "edx" || project.ID != projectID("edx") || project.Domain.ID != "default" {
		t.Errorf("project = %+v (%v)", project, err)
	}
	roles, _ := res.ExtractRoles()
	var names []string
	for _, r := range roles {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff([]string{"member", "reader"}, names); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	if ok, err := tokens.Validate(ctx, clients["swift"], alice); err != nil || !ok {
		t.Errorf("HEAD of a valid token: %v %v", ok, err)
	}

	var body map[string]map[string]any
	if err := getJSON(t, f, clients["swift"].TokenID, alice, "?nocatalog", &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["token"]["catalog"]; ok {
		t.Error("nocatalog: the token still has a catalog")
	}

	f.clock.Add(2 * time.Hour) // alice's token ran out; the service user's too, so log in again
	swift := f.identity(t, "swift").TokenID
	if got := get(swift, alice, ""); got != 404 {
		t.Errorf("expired token: status %d, want 404", got)
	}
	if got := get(swift, alice, "?allow_expired=1"); got != 200 {
		t.Errorf("expired token with allow_expired: status %d, want 200", got)
	}
	if got := get(swift, revoked, "?allow_expired=true"); got != 404 {
		t.Errorf("revoked token with allow_expired: status %d, want 404", got)
	}
}

func getJSON(t *testing.T, f *fixture, caller, subject, query string, v any) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/identity/v3/auth/tokens"+query, nil)
	req.Header.Set("X-Auth-Token", caller)
	req.Header.Set("X-Subject-Token", subject)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestCatalog registers Swift the way swift.sh does (a service, endpoints
// per region and interface with an AUTH_$(project_id)s URL) through
// gophercloud's identity clients, then checks the catalog every user's token
// carries and that an object-store client finds its region's account.
func TestCatalog(t *testing.T) {
	f := newFixture(t, Options{Users: keystoneUsers()})
	ctx := context.Background()
	admin := f.identity(t, "swift")
	member := f.identity(t, "alice")

	if _, err := services.Create(ctx, member, services.CreateOpts{Type: "object-store"}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusForbidden) {
		t.Fatalf("a member creating a service: %v, want 403", err)
	}
	svc, err := services.Create(ctx, admin, services.CreateOpts{Type: "object-store", Name: "swift"}).Extract()
	if err != nil {
		t.Fatalf("creating the service: %v", err)
	}
	for _, region := range []string{"RegionA", "RegionB"} {
		for _, iface := range []gophercloud.Availability{gophercloud.AvailabilityPublic, gophercloud.AvailabilityInternal} {
			url := "http://swift-" + region + ".test/v1/AUTH_$(project_id)s"
			if _, err := endpoints.Create(ctx, admin, endpoints.CreateOpts{Availability: iface, Region: region, URL: url, ServiceID: svc.ID}).Extract(); err != nil {
				t.Fatalf("creating the %s %s endpoint: %v", region, iface, err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		opts endpoints.CreateOpts
		want int
	}{
		{"bad interface", endpoints.CreateOpts{Availability: "private", URL: "http://x", ServiceID: svc.ID}, 400},
		{"unknown region", endpoints.CreateOpts{Availability: "public", Region: "RegionZ", URL: "http://x", ServiceID: svc.ID}, 404},
		{"unknown service", endpoints.CreateOpts{Availability: "public", URL: "http://x", ServiceID: "nope"}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := endpoints.Create(ctx, admin, tc.opts).Extract()
			if !gophercloud.ResponseCodeIs(err, tc.want) {
				t.Errorf("err = %v, want status %d", err, tc.want)
			}
		})
	}

	pages, err := endpoints.List(admin, endpoints.ListOpts{ServiceID: svc.ID, RegionID: "RegionB"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed, _ := endpoints.ExtractEndpoints(pages)
	var got []string
	for _, ep := range listed {
		got = append(got, string(ep.Availability)+" "+ep.URL)
	}
	sort.Strings(got)
	want := []string{"internal http://swift-RegionB.test/v1/AUTH_$(project_id)s", "public http://swift-RegionB.test/v1/AUTH_$(project_id)s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints of RegionB (-want +got):\n%s", diff)
	}

	// A fresh token of alice: the catalog has her project's account in
	// both regions, and identity on every interface (auth_token's default
	// is internal).
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: f.srv.URL + "/identity/v3", Username: "alice", Password: "pw-alice", DomainName: "Default", TenantName: "edx"})
	if err != nil {
		t.Fatal(err)
	}
	for _, region := range []string{"RegionA", "RegionB"} {
		sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: region})
		if err != nil {
			t.Fatalf("object-store in %s: %v", region, err)
		}
		if want := "http://swift-" + region + ".test/v1/AUTH_" + projectID("edx") + "/"; sc.Endpoint != want {
			t.Errorf("object-store endpoint in %s = %s, want %s", region, sc.Endpoint, want)
		}
		for _, iface := range []gophercloud.Availability{gophercloud.AvailabilityInternal, gophercloud.AvailabilityAdmin} {
			if _, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{Region: region, Availability: iface}); err != nil {
				t.Errorf("identity %s endpoint in %s: %v", iface, region, err)
			}
		}
	}

	// GET /v3/auth/catalog: the same catalog as the token's.
	ic, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := catalog.List(ic).AllPages(ctx)
	if err != nil {
		t.Fatalf("GET /v3/auth/catalog: %v", err)
	}
	entries, _ := catalog.ExtractServiceCatalog(page)
	var types []string
	for _, e := range entries {
		types = append(types, e.Type)
	}
	if diff := cmp.Diff([]string{"identity", "container-infra", "object-store"}, types); diff != "" {
		t.Errorf("GET /v3/auth/catalog service types (-want +got):\n%s", diff)
	}

	// Deleting the service takes its endpoints out of the catalog.
	if err := services.Delete(ctx, admin, svc.ID).ExtractErr(); err != nil {
		t.Fatalf("deleting the service: %v", err)
	}
	pc, err = openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: f.srv.URL + "/identity/v3", Username: "alice", Password: "pw-alice", DomainName: "Default", TenantName: "edx"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: "RegionA"}); err == nil || !strings.Contains(err.Error(), "No suitable endpoint") {
		t.Errorf("object-store after the service was deleted: %v, want no endpoint", err)
	}
}

// TestTrusts: a trust as Magnum makes one for its trustee user, who logs in
// with its own password and the trust id (the node registries' Swift login)
// and acts in the trustor's project with the trust's roles.
func TestTrusts(t *testing.T) {
	f := newFixture(t, Options{Users: keystoneUsers()})
	ctx := context.Background()
	trustee, err := f.emu.AddUser(User{Name: "trustee", Password: "pw-trustee", Project: "trustees", Domain: "magnum"})
	if err != nil {
		t.Fatal(err)
	}
	alice := f.identity(t, "alice")
	aliceID := f.emu.users[0].id
	create := func(sc *gophercloud.ServiceClient, roles ...string) (*trusts.Trust, error) {
		opts := trusts.CreateOpts{TrustorUserID: aliceID, TrusteeUserID: trustee.id, ProjectID: projectID("edx"), Impersonation: true}
		for _, r := range roles {
			opts.Roles = append(opts.Roles, trusts.Role{Name: r})
		}
		return trusts.Create(ctx, sc, opts).Extract()
	}
	for _, tc := range []struct {
		name  string
		by    *gophercloud.ServiceClient
		roles []string
		want  int
	}{
		{"a role the trustor lacks", alice, []string{"admin"}, 403},
		{"no role", alice, nil, 400},
		{"not by the trustor", f.identity(t, "bob"), []string{"member"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := create(tc.by, tc.roles...); !gophercloud.ResponseCodeIs(err, tc.want) {
				t.Errorf("err = %v, want status %d", err, tc.want)
			}
		})
	}
	tr, err := create(alice, "member")
	if err != nil {
		t.Fatalf("creating the trust: %v", err)
	}

	login := func(user, password, domainID string) (*gophercloud.ProviderClient, error) {
		return openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
			IdentityEndpoint: f.srv.URL + "/identity/v3", Username: user, Password: password, DomainID: domainID,
			Scope: &gophercloud.AuthScope{TrustID: tr.ID},
		})
	}
	if _, err := login("bob", "pw-bob", "default"); !gophercloud.ResponseCodeIs(err, 403) {
		t.Errorf("a user who is not the trustee: %v, want 403", err)
	}
	pc, err := login("trustee", "pw-trustee", "magnum")
	if err != nil {
		t.Fatalf("the trustee with the trust: %v", err)
	}
	res := tokens.Get(ctx, f.identity(t, "swift"), pc.TokenID)
	project, _ := res.ExtractProject()
	user, _ := res.ExtractUser()
	roles, _ := res.ExtractRoles()
	got, _ := res.ExtractTrust()
	if project == nil || project.ID != projectID("edx") || user == nil || user.ID != aliceID ||
		len(roles) != 1 || roles[0].Name != "member" || got == nil || got.ID != tr.ID {
		t.Errorf("trust-scoped token: project %+v, user %+v, roles %+v, trust %+v; want edx, alice (impersonation), member, %s", project, user, roles, got, tr.ID)
	}

	if err := trusts.Delete(ctx, alice, tr.ID).ExtractErr(); err != nil {
		t.Fatalf("deleting the trust: %v", err)
	}
	if ok, err := tokens.Validate(ctx, f.identity(t, "swift"), pc.TokenID); err != nil || ok {
		t.Errorf("a token of a deleted trust: valid=%v, %v", ok, err)
	}
	if _, err := login("trustee", "pw-trustee", "magnum"); !gophercloud.ResponseCodeIs(err, 403) {
		t.Errorf("logging in with a deleted trust: %v, want 403", err)
	}
}
