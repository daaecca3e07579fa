package openstackemu

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/certificates"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clustertemplates"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/nodegroups"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	emu   *Emulator
	srv   *httptest.Server
	clock *clock
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	opts.Now = c.Now
	if len(opts.Users) == 0 {
		opts.Users = []User{{Name: "alice", Password: "pw-alice", Project: "edx", AppCredID: "ac-1", AppCredName: "ci", AppCredSecret: "ac-secret"}}
	}
	if len(opts.Regions) == 0 {
		opts.Regions = []string{"RegionA", "RegionB"}
	}
	emu, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	return &fixture{emu: emu, srv: srv, clock: c}
}

func (f *fixture) client(t *testing.T, ao gophercloud.AuthOptions, region, microversion string) *gophercloud.ServiceClient {
	t.Helper()
	ao.IdentityEndpoint = f.srv.URL + "/identity/v3"
	ao.AllowReauth = true
	pc, err := openstack.AuthenticatedClient(context.Background(), ao)
	if err != nil {
		t.Fatalf("authenticating: %v", err)
	}
	sc, err := openstack.NewContainerInfraV1(pc, gophercloud.EndpointOpts{Region: region})
	if err != nil {
		t.Fatalf("container-infra client: %v", err)
	}
	sc.Microversion = microversion
	return sc
}

func password() gophercloud.AuthOptions {
	return gophercloud.AuthOptions{Username: "alice", Password: "pw-alice", DomainName: "Default", TenantName: "edx"}
}

func createTemplate(t *testing.T, sc *gophercloud.ServiceClient, name, kubeTag string) *clustertemplates.ClusterTemplate {
	t.Helper()
	yes := true
	ct, err := clustertemplates.Create(context.Background(), sc, clustertemplates.CreateOpts{
		Name: name, COE: "kubernetes", ImageID: "fedora-coreos-34", KeyPairID: "ops", FlavorID: "m1.large",
		MasterFlavorID: "m1.medium", ExternalNetworkID: "public", MasterLBEnabled: &yes, FloatingIPEnabled: &yes,
		Labels: map[string]string{"kube_tag": kubeTag, "cinder_csi_enabled": "true"},
	}).Extract()
	if err != nil {
		t.Fatalf("creating template: %v", err)
	}
	return ct
}

func intp(n int) *int { return &n }

func TestClusterLifecycle(t *testing.T) {
	f := newFixture(t, Options{CreateDuration: 10 * time.Second, UpdateDuration: 5 * time.Second, DeleteDuration: 2 * time.Second})
	ctx := context.Background()
	sc := f.client(t, password(), "RegionA", "1.10")
	ct := createTemplate(t, sc, "k8s-a", "v1.21.10")
	if ct.ClusterDistro != "fedora-coreos" || !ct.MasterLBEnabled || ct.Labels["kube_tag"] != "v1.21.10" {
		t.Fatalf("template as created: %+v", ct)
	}
	id, err := clusters.Create(ctx, sc, clusters.CreateOpts{
		Name: "prod", ClusterTemplateID: ct.UUID, MasterCount: intp(3), NodeCount: intp(3),
		Labels: map[string]string{"min_node_count": "2", "max_node_count": "5"}, MergeLabels: func() *bool { b := true; return &b }(),
	}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	get := func() *clusters.Cluster {
		t.Helper()
		c, err := clusters.Get(ctx, sc, id).Extract()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := get()
	if c.Status != "CREATE_IN_PROGRESS" || c.APIAddress != "" {
		t.Fatalf("just created: status %s api %q", c.Status, c.APIAddress)
	}
	f.clock.Add(10 * time.Second)
	c = get()
	got := []any{c.Status, c.MasterCount, c.NodeCount, len(c.MasterAddresses), len(c.NodeAddresses), c.COEVersion, c.HealthStatus, c.Labels["cinder_csi_enabled"], c.Labels["min_node_count"]}
	want := []any{"CREATE_COMPLETE", 3, 3, 3, 3, "v1.21.10", "HEALTHY", "true", "2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("after create (-want +got):\n%s", diff)
	}
	if c.APIAddress == "" {
		t.Fatal("no api_address after CREATE_COMPLETE")
	}

	// Resizing outside the nodegroup's bounds is refused; inside is accepted.
	if _, err := clusters.Resize(ctx, sc, id, clusters.ResizeOpts{NodeCount: intp(6)}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Fatalf("resize above max_node_count: err = %v, want 400", err)
	}
	if _, err := clusters.Resize(ctx, sc, id, clusters.ResizeOpts{NodeCount: intp(4)}).Extract(); err != nil {
		t.Fatal(err)
	}
	if c = get(); c.Status != "UPDATE_IN_PROGRESS" || c.NodeCount != 4 {
		t.Fatalf("resizing: %s node_count %d", c.Status, c.NodeCount)
	}
	// An upgrade while updating is refused, like Magnum's conductor does.
	ct2 := createTemplate(t, sc, "k8s-b", "v1.21.14")
	if _, err := clusters.Upgrade(ctx, sc, id, clusters.UpgradeOpts{ClusterTemplate: ct2.UUID}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Fatalf("upgrade during update: err = %v, want 400", err)
	}
	f.clock.Add(5 * time.Second)
	if c = get(); c.Status != "UPDATE_COMPLETE" || len(c.NodeAddresses) != 4 {
		t.Fatalf("after resize: %s, %d node addresses", c.Status, len(c.NodeAddresses))
	}

	// Nodegroup min/max through PATCH.
	ngs, err := nodegroups.List(sc, id, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := nodegroups.ExtractNodeGroups(ngs)
	if len(list) != 2 {
		t.Fatalf("nodegroups: %+v", list)
	}
	if _, err := nodegroups.Update(ctx, sc, id, "default-worker", []nodegroups.UpdateOpts{{Op: nodegroups.ReplaceOp, Path: "/max_node_count", Value: 8}}).Extract(); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(5 * time.Second)
	ng, err := nodegroups.Get(ctx, sc, id, "default-worker").Extract()
	if err != nil || ng.MaxNodeCount == nil || *ng.MaxNodeCount != 8 || ng.MinNodeCount != 2 {
		t.Fatalf("nodegroup after patch: %+v, %v", ng, err)
	}

	// An extra nodegroup comes and goes; the default ones cannot be deleted.
	extra, err := nodegroups.Create(ctx, sc, id, nodegroups.CreateOpts{Name: "gpu", NodeCount: intp(2), FlavorID: "g1.large"}).Extract()
	if err != nil || extra.Role != "worker" || extra.NodeCount != 2 {
		t.Fatalf("creating a nodegroup: %+v %v", extra, err)
	}
	f.clock.Add(5 * time.Second)
	if ng, err := nodegroups.Get(ctx, sc, id, "gpu").Extract(); err != nil || ng.Status != "CREATE_COMPLETE" {
		t.Fatalf("new nodegroup after the update: %+v %v", ng, err)
	}
	if err := nodegroups.Delete(ctx, sc, id, "default-worker").ExtractErr(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Fatalf("deleting default-worker: err = %v, want 400", err)
	}
	if err := nodegroups.Delete(ctx, sc, id, "gpu").ExtractErr(); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(5 * time.Second)

	// Upgrade to a newer kube_tag; a downgrade is refused.
	if _, err := clusters.Upgrade(ctx, sc, id, clusters.UpgradeOpts{ClusterTemplate: ct2.UUID}).Extract(); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(5 * time.Second)
	if c = get(); c.ClusterTemplateID != ct2.UUID || c.COEVersion != "v1.21.14" || c.Status != "UPDATE_COMPLETE" {
		t.Fatalf("after upgrade: template %s coe %s status %s", c.ClusterTemplateID, c.COEVersion, c.Status)
	}
	if _, err := clusters.Upgrade(ctx, sc, id, clusters.UpgradeOpts{ClusterTemplate: ct.UUID}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Fatalf("downgrade: err = %v, want 400", err)
	}
	// A template in use cannot be deleted.
	if err := clustertemplates.Delete(ctx, sc, ct2.UUID).ExtractErr(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Fatalf("deleting a template in use: err = %v, want 400", err)
	}
	// Regions are separate.
	scB := f.client(t, password(), "RegionB", "1.10")
	if _, err := clusters.Get(ctx, scB, id).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("cluster of region A seen in region B: err = %v", err)
	}

	if err := clusters.Delete(ctx, sc, id).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if c = get(); c.Status != "DELETE_IN_PROGRESS" {
		t.Fatalf("deleting: %s", c.Status)
	}
	f.clock.Add(2 * time.Second)
	if _, err := clusters.Get(ctx, sc, id).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("after delete: err = %v, want 404", err)
	}
	if err := clustertemplates.Delete(ctx, sc, ct2.UUID).ExtractErr(); err != nil {
		t.Fatalf("deleting the unused template: %v", err)
	}
}

func TestCreateFailedReportsFaults(t *testing.T) {
	f := newFixture(t, Options{CreateDuration: time.Second})
	ctx := context.Background()
	if err := f.emu.Inject(Fault{Kind: FaultCreateFailed, Cluster: "bad", StatusReason: "Quota exceeded for instances",
		Faults: map[string]string{"default-master": "No valid host was found"}}); err != nil {
		t.Fatal(err)
	}
	sc := f.client(t, password(), "RegionA", "1.10")
	ct := createTemplate(t, sc, "k8s", "v1.21.10")
	good, _ := clusters.Create(ctx, sc, clusters.CreateOpts{Name: "good", ClusterTemplateID: ct.UUID}).Extract()
	bad, _ := clusters.Create(ctx, sc, clusters.CreateOpts{Name: "bad", ClusterTemplateID: ct.UUID}).Extract()
	f.clock.Add(time.Second)
	c, err := clusters.Get(ctx, sc, bad).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"CREATE_FAILED", "Quota exceeded for instances", map[string]string{"default-master": "No valid host was found"}},
		[]any{c.Status, c.StatusReason, c.Faults}); diff != "" {
		t.Errorf("failed cluster (-want +got):\n%s", diff)
	}
	if c, _ := clusters.Get(ctx, sc, good).Extract(); c.Status != "CREATE_COMPLETE" || len(c.Faults) != 0 {
		t.Errorf("the fault leaked to another cluster: %s %v", c.Status, c.Faults)
	}
}

func TestStuckNeverCompletes(t *testing.T) {
	f := newFixture(t, Options{CreateDuration: time.Second})
	ctx := context.Background()
	_ = f.emu.Inject(Fault{Kind: FaultStuck, Cluster: "slow"})
	sc := f.client(t, password(), "RegionA", "1.10")
	ct := createTemplate(t, sc, "k8s", "v1.21.10")
	id, _ := clusters.Create(ctx, sc, clusters.CreateOpts{Name: "slow", ClusterTemplateID: ct.UUID}).Extract()
	f.clock.Add(24 * time.Hour)
	if c, _ := clusters.Get(ctx, sc, id).Extract(); c.Status != "CREATE_IN_PROGRESS" {
		t.Fatalf("stuck cluster: %s", c.Status)
	}
}

func TestMicroversions(t *testing.T) {
	f := newFixture(t, Options{MaxMicroversion: "1.8"})
	ctx := context.Background()
	for _, tc := range []struct {
		name, version string
		want          int
	}{
		{"supported", "1.8", http.StatusOK},
		{"too new", "1.10", http.StatusNotAcceptable},
		{"too old", "0.9", http.StatusNotAcceptable},
		{"latest", "latest", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := f.client(t, password(), "RegionA", tc.version)
			resp, err := sc.Get(ctx, sc.ServiceURL("clusters"), nil, &gophercloud.RequestOpts{OkCodes: []int{200}})
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			var ue gophercloud.ErrUnexpectedResponseCode
			if errors.As(err, &ue) {
				code = ue.Actual
				if !bytes.Contains(ue.Body, []byte("magnum.microversion-unsupported")) {
					t.Errorf("406 body lacks the error code: %s", ue.Body)
				}
			}
			if code != tc.want {
				t.Fatalf("status %d, want %d (err %v)", code, tc.want, err)
			}
			if tc.want == http.StatusOK && resp.Header.Get("OpenStack-API-Maximum-Version") != "container-infra 1.8" {
				t.Errorf("max version header %q", resp.Header.Get("OpenStack-API-Maximum-Version"))
			}
		})
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ao   gophercloud.AuthOptions
		ok   bool
	}{
		{"password", password(), true},
		{"wrong password", gophercloud.AuthOptions{Username: "alice", Password: "nope", DomainName: "Default", TenantName: "edx"}, false},
		{"application credential id", gophercloud.AuthOptions{ApplicationCredentialID: "ac-1", ApplicationCredentialSecret: "ac-secret"}, true},
		{"application credential name", gophercloud.AuthOptions{ApplicationCredentialName: "ci", Username: "alice", DomainName: "Default", ApplicationCredentialSecret: "ac-secret"}, true},
		{"wrong secret", gophercloud.AuthOptions{ApplicationCredentialID: "ac-1", ApplicationCredentialSecret: "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ao.IdentityEndpoint = f.srv.URL + "/identity/v3"
			_, err := openstack.AuthenticatedClient(ctx, tc.ao)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// Versionless endpoint: discovery through /identity.
	if _, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: f.srv.URL + "/identity/", Username: "alice", Password: "pw-alice", DomainName: "Default", TenantName: "edx"}); err != nil {
		t.Fatalf("versionless auth URL: %v", err)
	}
}

func TestTokenExpiryReauth(t *testing.T) {
	f := newFixture(t, Options{TokenTTL: time.Hour})
	ctx := context.Background()
	sc := f.client(t, password(), "RegionA", "1.10")
	if _, err := clusters.List(sc, nil).AllPages(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Hour) // the token ran out; gophercloud must re-authenticate
	if _, err := clusters.List(sc, nil).AllPages(ctx); err != nil {
		t.Fatalf("after expiry with AllowReauth: %v", err)
	}
	// An injected mid-wait expiry fires on the second matching request.
	_ = f.emu.Inject(Fault{Kind: FaultExpireTokens, Project: "edx", Method: "GET", After: 1})
	for i := 0; i < 3; i++ {
		if _, err := clusters.List(sc, nil).AllPages(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	req, _ := http.NewRequest("GET", sc.ServiceURL("clusters"), nil)
	req.Header.Set("X-Auth-Token", "bogus")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bogus token: %v %v", resp.StatusCode, err)
	}
}

func TestCertificateSigning(t *testing.T) {
	f := newFixture(t, Options{CreateDuration: time.Second})
	ctx := context.Background()
	sc := f.client(t, password(), "RegionA", "1.10")
	ct := createTemplate(t, sc, "k8s", "v1.21.10")
	id, _ := clusters.Create(ctx, sc, clusters.CreateOpts{Name: "c", ClusterTemplateID: ct.UUID}).Extract()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	signed, err := certificates.Create(ctx, sc, certificates.CreateOpts{ClusterUUID: id, CSR: csr}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certificates.Get(ctx, sc, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ca.PEM)) {
		t.Fatalf("CA PEM: %q", ca.PEM)
	}
	block, _ := pem.Decode([]byte(signed.PEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: f.clock.Now()}); err != nil {
		t.Fatalf("signed cert does not verify against the cluster CA: %v", err)
	}
	if diff := cmp.Diff([]string{"admin", "system:masters"}, []string{cert.Subject.CommonName, cert.Subject.Organization[0]}); diff != "" {
		t.Errorf("subject (-want +got):\n%s", diff)
	}
	if _, err := certificates.Create(ctx, sc, certificates.CreateOpts{ClusterUUID: id, CSR: "junk"}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Errorf("junk CSR: err = %v, want 400", err)
	}
}

func TestAdminAPI(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	post := func(path string, body any) *http.Response {
		b, _ := json.Marshal(body)
		resp, err := http.Post(f.srv.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post("/admin/users", map[string]any{"name": "bob", "password": "pw-bob", "project": "bobs"}); r.StatusCode != http.StatusCreated {
		t.Fatalf("adding a user: %d", r.StatusCode)
	}
	if r := post("/admin/faults", map[string]any{"kind": "http_error", "project": "bobs", "status": 500, "count": 2}); r.StatusCode != http.StatusCreated {
		t.Fatalf("injecting: %d", r.StatusCode)
	}
	if r := post("/admin/faults", map[string]any{"kind": "nonsense"}); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad fault kind: %d", r.StatusCode)
	}
	bob := f.client(t, gophercloud.AuthOptions{Username: "bob", Password: "pw-bob", DomainName: "Default", TenantName: "bobs"}, "RegionA", "1.10")
	alice := f.client(t, password(), "RegionA", "1.10")
	for i, want := range []int{500, 500, 200} {
		_, err := clusters.List(bob, nil).AllPages(ctx)
		if got := statusOf(err); got != want {
			t.Errorf("bob request %d: status %d, want %d", i, got, want)
		}
		if _, err := clusters.List(alice, nil).AllPages(ctx); err != nil {
			t.Errorf("alice's requests must not see bob's faults: %v", err)
		}
	}
}

func statusOf(err error) int {
	if err == nil {
		return 200
	}
	var ue gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &ue) {
		return ue.Actual
	}
	return -1
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, Options{})
	sc := f.client(t, password(), "RegionA", "1.10")
	ct := createTemplate(t, sc, "k8s", "v1.21.10")
	for _, tc := range []struct {
		name, path, body string
	}{
		{"unknown template attribute", "clustertemplates", `{"coe":"kubernetes","image_id":"x","bogus":1}`},
		{"template without image", "clustertemplates", `{"coe":"kubernetes"}`},
		{"template wrong type", "clustertemplates", `{"coe":"kubernetes","image_id":"x","docker_volume_size":"big"}`},
		{"cluster with missing template", "clusters", `{"name":"x","cluster_template_id":"nope"}`},
		{"cluster bad name", "clusters", `{"name":"1x","cluster_template_id":"` + ct.UUID + `"}`},
		{"cluster masters without LB", "clusters", `{"name":"x","cluster_template_id":"` + ct.UUID + `","master_count":3,"master_lb_enabled":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body map[string]any
			_ = json.Unmarshal([]byte(tc.body), &body)
			_, err := sc.Post(context.Background(), sc.ServiceURL(tc.path), body, nil, &gophercloud.RequestOpts{OkCodes: []int{201, 202}})
			if got := statusOf(err); got != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (err %v)", got, err)
			}
		})
	}
}
