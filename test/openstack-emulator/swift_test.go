package main

// Tests of the test env's Swift behind the emulator's Keystone
// (hack/servers/swift.sh, registries.sh): real Swift with keystonemiddleware
// validating the emulator's tokens, and distribution registries logging in
// through Keystone v3 as Magnum's node registries do.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/trusts"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/containers"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"
	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/testenv"
)

// swiftEnv is what swift.sh exports for Keystone-authenticated Swift.
type swiftEnv struct {
	url, authURL, user, password, domain, project, account string
	regionA, regionB, containerA, containerB               string
	admin                                                  openstackemu.Admin
}

func swiftFromEnv(t *testing.T) swiftEnv {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_SWIFT_URL", "SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD", "SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT", "SLIPWAY_TEST_SWIFT_KEYSTONE_ACCOUNT",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A", "SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B",
		"SLIPWAY_TEST_OS_EMULATOR_ADMIN")
	return swiftEnv{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], openstackemu.Admin{URL: v[11]}}
}

func (s swiftEnv) login(t *testing.T, user, password, project string) *gophercloud.ProviderClient {
	t.Helper()
	pc, err := openstack.AuthenticatedClient(context.Background(), gophercloud.AuthOptions{
		IdentityEndpoint: s.authURL, Username: user, Password: password, DomainName: s.domain, TenantName: project,
	})
	if err != nil {
		t.Fatalf("logging in as %s: %v", user, err)
	}
	return pc
}

// fresh adds a user of its own project (or of project, if given) with roles
// to the emulator and returns its name and password.
func (s swiftEnv) fresh(t *testing.T, project string, roles ...string) (string, string) {
	t.Helper()
	name, password := "t-"+randHex(6), randHex(16)
	if project == "" {
		project = name
	}
	if err := s.admin.AddUser(context.Background(), openstackemu.User{Name: name, Password: password, Project: project, Roles: roles}); err != nil {
		t.Fatal(err)
	}
	return name, password
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// status sends method to url with token as X-Auth-Token and returns the
// status code.
func status(t *testing.T, method, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSwiftValidatesKeystoneTokens: Swift's auth_token middleware asks the
// emulator's Keystone about every token it has not cached, and keystoneauth
// decides by the token's project and roles.
func TestSwiftValidatesKeystoneTokens(t *testing.T) {
	s := swiftFromEnv(t)
	ctx := context.Background()
	account := s.url + "/v1/" + s.account

	// The registry user through the catalog, in each region: its account,
	// both regions' containers, an object written and read back.
	pc := s.login(t, s.user, s.password, s.project)
	for _, region := range []string{s.regionA, s.regionB} {
		sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: region})
		if err != nil {
			t.Fatalf("object-store endpoint of %s: %v", region, err)
		}
		if sc.Endpoint != account+"/" {
			t.Errorf("object-store endpoint of %s = %s, want %s/", region, sc.Endpoint, account)
		}
		pages, err := containers.List(sc, nil).AllPages(ctx)
		if err != nil {
			t.Fatalf("listing containers in %s: %v", region, err)
		}
		names, _ := containers.ExtractNames(pages)
		if !slices.Contains(names, s.containerA) || !slices.Contains(names, s.containerB) {
			t.Errorf("containers in %s = %v, want %s and %s", region, names, s.containerA, s.containerB)
		}
	}
	sc, _ := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: s.regionA})
	obj, content := "slipway-test/"+t.Name()+"-"+randHex(4), []byte(randHex(64))
	if _, err := objects.Create(ctx, sc, s.containerA, obj, objects.CreateOpts{Content: bytes.NewReader(content)}).Extract(); err != nil {
		t.Fatalf("writing an object: %v", err)
	}
	t.Cleanup(func() { _, _ = objects.Delete(context.Background(), sc, s.containerA, obj, nil).Extract() })
	dl := objects.Download(ctx, sc, s.containerA, obj, nil)
	got, err := dl.ExtractContent()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("reading the object back: %q, %v", got, err)
	}

	revoked := s.login(t, s.user, s.password, s.project)
	ic, err := openstack.NewIdentityV3(revoked, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	revokeToken(t, ic, revoked.TokenID)
	readerName, readerPassword := s.fresh(t, s.project, "reader")
	otherName, otherPassword := s.fresh(t, "", "member")
	other := s.login(t, otherName, otherPassword, otherName)
	for _, tc := range []struct {
		name, url, token string
		want             int
	}{
		{"the registry user", account, pc.TokenID, 200},
		{"a made-up token", account, "gAAAAA" + randHex(32), 401},
		{"a revoked token, never seen before", account, revoked.TokenID, 401},
		{"a reader of the project (no operator role)", account, s.login(t, readerName, readerPassword, s.project).TokenID, 403},
		{"a member of another project", account, other.TokenID, 403},
		{"that member in its own account", s.url + "/v1/AUTH_" + projectOf(t, other, s.regionA), other.TokenID, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status(t, http.MethodHead, tc.url, tc.token); !sameAnswer(got, tc.want) {
				t.Errorf("HEAD %s: %d, want %d", tc.url, got, tc.want)
			}
		})
	}
}

// sameAnswer compares Swift's status with the one a test wants, where any 2xx
// is a yes: Swift answers HEAD of an account 204, or 200 for an account it
// has not stored yet (account_autocreate).
func sameAnswer(got, want int) bool {
	return got == want || got/100 == 2 && want/100 == 2
}

func revokeToken(t *testing.T, ic *gophercloud.ServiceClient, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, ic.ServiceURL("auth", "tokens"), nil)
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("X-Subject-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoking a token: %s", resp.Status)
	}
}

// projectOf returns the project id of a provider client's token.
func projectOf(t *testing.T, pc *gophercloud.ProviderClient, region string) string {
	t.Helper()
	sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: region})
	if err != nil {
		t.Fatal(err)
	}
	_, acct, ok := strings.Cut(strings.TrimSuffix(sc.Endpoint, "/"), "/v1/AUTH_")
	if !ok {
		t.Fatalf("object-store endpoint %s has no AUTH_ account", sc.Endpoint)
	}
	return acct
}

// TestSwiftServiceTokenRenewed: when the token auth_token validates with
// (its service user's) runs out early, Keystone answers 401 and auth_token
// logs in again, so users' requests keep working.
func TestSwiftServiceTokenRenewed(t *testing.T) {
	s := swiftFromEnv(t)
	ctx := context.Background()
	// A user token Swift has not cached yet, used after the service token
	// was expired in Keystone.
	if err := s.admin.ExpireTokens(ctx, "service"); err != nil {
		t.Fatal(err)
	}
	pc := s.login(t, s.user, s.password, s.project)
	if got := status(t, http.MethodHead, s.url+"/v1/"+s.account, pc.TokenID); !sameAnswer(got, 200) {
		t.Errorf("HEAD of the account after the service token expired: %d, want 200", got)
	}
}

// TestNodeRegistryOnCIStorage is the node pattern: a blob pushed through
// region A's CI registry is served by a second distribution process started
// from the `storage:` section of the CI registry's config (what node.sh does
// for the node registry), and it lives in region A's container only.
func TestNodeRegistryOnCIStorage(t *testing.T) {
	s := swiftFromEnv(t)
	dir, regA := testenv.Get(t, "SLIPWAY_TESTENV_DIR"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A")
	bin := testenv.Tool(t, "docker-registry")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	img, err := random.Image(300_000, 2)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	repo := "slipway-test/node-pattern-" + randHex(4)
	ci, err := name.ParseReference(regA+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ci, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing to region A's CI registry: %v", err)
	}

	node := startNodeRegistry(ctx, t, bin, filepath.Join(dir, "registry", "a.yml"))
	ref, err := name.ParseReference(node+"/"+repo+"@"+digest.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pulling by digest from the node registry: %v", err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Fatalf("the node registry's image does not match its digests: %v", err)
	}

	// The blobs are objects of region A's container, not of region B's.
	pc := s.login(t, s.user, s.password, s.project)
	sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: s.regionA})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	blob := fmt.Sprintf("files/docker/registry/v2/blobs/sha256/%s/%s/data", ld.Hex[:2], ld.Hex)
	if _, err := objects.Get(ctx, sc, s.containerA, blob, nil).Extract(); err != nil {
		t.Errorf("layer %s in container %s: %v", ld, s.containerA, err)
	}
	if _, err := objects.Get(ctx, sc, s.containerB, blob, nil).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("layer %s in container %s: %v, want 404", ld, s.containerB, err)
	}
}

// startNodeRegistry runs docker-registry with the storage section of the CI
// registry config ciConf on a free port and returns its address once /v2/
// answers; the process is stopped when the test ends.
func startNodeRegistry(ctx context.Context, t *testing.T, bin, ciConf string) string {
	t.Helper()
	raw, err := os.ReadFile(ciConf)
	if err != nil {
		t.Fatalf("region A's registry config: %v", err)
	}
	var ci map[string]any
	if err := yaml.Unmarshal(raw, &ci); err != nil {
		t.Fatalf("%s: %v", ciConf, err)
	}
	storage, ok := ci["storage"].(map[string]any)
	if !ok || storage["swift"] == nil {
		t.Fatalf("%s has no storage.swift section: %v", ciConf, ci["storage"])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf, _ := yaml.Marshal(map[string]any{
		"version": "0.1", "log": map[string]any{"level": "warn"}, "storage": storage,
		"http": map[string]any{"addr": addr, "secret": "slipway-test-node"},
	})
	path := filepath.Join(t.TempDir(), "node.yml")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", path)
	cmd.Env = withoutEnv(os.Environ(), "AWS_CA_BUNDLE")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = poll.Until(wait, poll.Constant(100*time.Millisecond), func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("node registry on %s not ready: %v\n%s", addr, err, logs.String())
	}
	return addr
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// TestSwiftTrusteeLogin is the login of Magnum's node registries: the
// trustee (its own domain, no role on the project) with a trust from the
// project's user opens the project's account; once the trust is deleted its
// tokens stop working in Swift too (those Swift has not cached yet).
func TestSwiftTrusteeLogin(t *testing.T) {
	s := swiftFromEnv(t)
	v := testenv.Require(t, "SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_DOMAIN_ID", "SLIPWAY_TEST_SWIFT_KEYSTONE_TRUST_ID")
	trustee, trusteePassword, trusteeDomain, envTrust := v[0], v[1], v[2], v[3]
	ctx := context.Background()
	account := s.url + "/v1/" + s.account
	login := func(trustID string) (*gophercloud.ProviderClient, error) {
		return openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
			IdentityEndpoint: s.authURL, Username: trustee, Password: trusteePassword, DomainID: trusteeDomain,
			Scope: &gophercloud.AuthScope{TrustID: trustID},
		})
	}

	// The env's trust, as B_NODE uses it: the catalog leads to the
	// project's account in region B, and region B's container is there.
	pc, err := login(envTrust)
	if err != nil {
		t.Fatalf("the trustee with the env's trust: %v", err)
	}
	sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: s.regionB})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Endpoint != account+"/" {
		t.Errorf("the trust token's object-store endpoint = %s, want %s/", sc.Endpoint, account)
	}
	if _, err := containers.Get(ctx, sc, s.containerB, nil).Extract(); err != nil {
		t.Errorf("container %s with the trust token: %v", s.containerB, err)
	}

	// A trust of its own, deleted.
	owner := s.login(t, s.user, s.password, s.project)
	ic, err := openstack.NewIdentityV3(owner, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	ownerID := userOf(ctx, t, ic, owner.TokenID)
	// With impersonation a trust token names the trustor: the trustee's id
	// comes from a login of its own.
	self, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: s.authURL, Username: trustee, Password: trusteePassword, DomainID: trusteeDomain})
	if err != nil {
		t.Fatal(err)
	}
	selfIC, err := openstack.NewIdentityV3(self, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	trusteeID := userOf(ctx, t, selfIC, self.TokenID) // a token may validate itself
	tr, err := trusts.Create(ctx, ic, trusts.CreateOpts{TrustorUserID: ownerID, TrusteeUserID: trusteeID, ProjectID: projectOf(t, owner, s.regionA),
		Impersonation: true, Roles: []trusts.Role{{Name: "member"}}}).Extract()
	if err != nil {
		t.Fatalf("creating a trust: %v", err)
	}
	fresh, err := login(tr.ID)
	if err != nil {
		t.Fatalf("the trustee with the new trust: %v", err)
	}
	if err := trusts.Delete(ctx, ic, tr.ID).ExtractErr(); err != nil {
		t.Fatalf("deleting the trust: %v", err)
	}
	if got := status(t, http.MethodHead, account, fresh.TokenID); got != http.StatusUnauthorized {
		t.Errorf("HEAD of the account with a deleted trust's token: %d, want 401", got)
	}
	if _, err := login(tr.ID); !gophercloud.ResponseCodeIs(err, http.StatusForbidden) {
		t.Errorf("logging in with a deleted trust: %v, want 403", err)
	}
}

// userOf returns the user id of a token, as Keystone reports it.
func userOf(ctx context.Context, t *testing.T, ic *gophercloud.ServiceClient, token string) string {
	t.Helper()
	u, err := tokens.Get(ctx, ic, token).ExtractUser()
	if err != nil {
		t.Fatalf("validating a token: %v", err)
	}
	return u.ID
}
