package magnum

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum/magnumtest"
	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/osauth"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

var regionsTestSpec = magnumtest.RegionsSpec

func (e *env) ensureRegions(o Options) *result.ClustersResult {
	e.T.Helper()
	res, err := ClustersEnsure(context.Background(), o)
	if err != nil {
		e.T.Fatalf("clusters ensure: %v", err)
	}
	return res
}

// kubeClient is a client-go client of a kubeconfig magnum-cluster wrote.
func kubeClient(t *testing.T, path string) *kubernetes.Clientset {
	t.Helper()
	rest, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("client-go cannot load %s: %v", path, err)
	}
	c, err := kubernetes.NewForConfig(rest)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTwoRegionsEnsure: a spec with regions makes a template and a cluster
// in each region's Magnum, each region's kubeconfig reaches that region's
// own control plane (region A's kube-apiserver has kwok-node-0, region
// B's kwok-b-node-0, each only there), and a rerun changes nothing.
func TestTwoRegionsEnsure(t *testing.T) {
	kube := testenv.Require(t, "SLIPWAY_TEST_KUBE_SERVER", "SLIPWAY_TEST_KUBE_NODE", "SLIPWAY_TEST_KUBE_B_SERVER", "SLIPWAY_TEST_KUBE_B_NODE")
	e := newEnv(t)
	dir := filepath.Join(e.Dir, "kube")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	o := e.opts(regionsTestSpec())
	o.KubeconfigDir = dir
	res := e.ensureRegions(o)

	type region struct {
		Region, Name, Status, API, Kubeconfig string
		Nodes                                 int
		Changes                               []string
	}
	var got []region
	for _, r := range res.Regions {
		got = append(got, region{r.Region, r.Cluster.Name, r.Cluster.Status, r.Cluster.APIAddress, r.Kubeconfig, r.Cluster.NodeCount, r.Changes})
	}
	tmplOne, tmplTwo := res.Regions[0].Template.Name, res.Regions[1].Template.Name
	want := []region{
		{"RegionOne", "c", "CREATE_COMPLETE", kube[0], filepath.Join(dir, "RegionOne.kubeconfig"), 2, []string{"created template " + tmplOne, "created cluster c (3 masters, 2 workers)"}},
		{"RegionTwo", "c", "CREATE_COMPLETE", kube[2], filepath.Join(dir, "RegionTwo.kubeconfig"), 1, []string{"created template " + tmplTwo, "created cluster c (3 masters, 1 workers)"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("regions (-want +got):\n%s", diff)
	}
	if tmplOne == tmplTwo || res.Regions[0].Cluster.UUID == res.Regions[1].Cluster.UUID {
		t.Errorf("the regions share a template %s/%s or a cluster UUID %s", tmplOne, tmplTwo, res.Regions[0].Cluster.UUID)
	}
	if len(res.Changes) != 4 || !strings.HasPrefix(res.Changes[2], "RegionTwo: created template ") {
		t.Errorf("changes of the run: %q", res.Changes)
	}

	// Each kubeconfig talks to its own region's API server: it sees the
	// node only that control plane has, and not the other region's.
	for _, tc := range []struct {
		region, node, other string
	}{{"RegionOne", kube[1], kube[3]}, {"RegionTwo", kube[3], kube[1]}} {
		path := filepath.Join(dir, tc.region+".kubeconfig")
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("kubeconfig of %s: %v %v", tc.region, err, fi)
		}
		c := kubeClient(t, path)
		if _, err := c.CoreV1().Nodes().Get(context.Background(), tc.node, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: the kubeconfig does not see its region's node %s: %v", tc.region, tc.node, err)
		}
		if _, err := c.CoreV1().Nodes().Get(context.Background(), tc.other, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: the other region's node %s: err = %v, want not found (is this kubeconfig for the other control plane?)", tc.region, tc.other, err)
		}
	}

	// The rerun changes nothing, in either region.
	again := e.ensureRegions(o)
	if len(again.Changes) != 0 || len(again.Regions) != 2 {
		t.Errorf("rerun changed %q", again.Changes)
	}
	for i, r := range again.Regions {
		if len(r.Changes) != 0 || r.Cluster.UUID != res.Regions[i].Cluster.UUID {
			t.Errorf("rerun in %s: changes %q, uuid %s", r.Region, r.Changes, r.Cluster.UUID)
		}
	}
	// diff per region agrees.
	lines, err := InRegions(ClusterDiff, nil)(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if d := strings.Join(RegionLines(lines), "\n"); d != "RegionOne: cluster c (CREATE_COMPLETE) matches the spec: no changes\nRegionTwo: cluster c (CREATE_COMPLETE) matches the spec: no changes" {
		t.Errorf("diff after ensure:\n%s", d)
	}
}

// TestOneRegionFailing: a region whose Magnum refuses the create fails the
// run (naming the region), the other region converges all the same, and
// the rerun converges the failed one while the other changes nothing.
// A user error in one region is exit 2 only when nothing changed anywhere.
func TestOneRegionFailing(t *testing.T) {
	e := newEnv(t)
	o := e.opts(regionsTestSpec())
	// Region B's Magnum answers 503 to the cluster create: POST is not
	// retried, so the run fails there.
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Method: "POST", PathContains: "/magnum/RegionTwo/v1/clusters", Status: 503})
	_, err := ClustersEnsure(context.Background(), o)
	var re *RegionsError
	if !errors.As(err, &re) || cli.ExitCode(err) != cli.ExitFailed {
		t.Fatalf("err = %v (exit %d), want a RegionsError with exit 1", err, cli.ExitCode(err))
	}
	if diff := cmp.Diff([]any{[]string{"RegionTwo"}, []string{"RegionOne"}}, []any{re.Failed, re.Done}); diff != "" {
		t.Errorf("failed and done regions (-want +got):\n%s", diff)
	}
	for _, w := range []string{"region RegionTwo: creating cluster c: Magnum answered 503", "region RegionOne done: rerun the same command to finish region RegionTwo"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	e.AssertFaultsFired()
	one := o
	one.Region = "RegionOne"
	shown, err := ClustersShow(context.Background(), one)
	if err != nil || len(shown.Regions) != 1 || shown.Regions[0].Cluster.Status != "CREATE_COMPLETE" {
		t.Fatalf("region A after the failed run: %v %+v", err, shown)
	}
	two := o
	two.Region = "RegionTwo"
	if _, err := ClustersShow(context.Background(), two); err == nil || !strings.Contains(err.Error(), "region RegionTwo: cluster c does not exist in region RegionTwo") {
		t.Fatalf("region B after the failed run: %v", err)
	}

	// The rerun converges region B; region A has nothing to do.
	res := e.ensureRegions(o)
	if got := []int{len(res.Regions[0].Changes), len(res.Regions[1].Changes)}; !cmp.Equal(got, []int{0, 1}) || res.Regions[1].Changes[0] != "created cluster c (3 masters, 1 workers)" {
		t.Errorf("rerun changes: %q and %q", res.Regions[0].Changes, res.Regions[1].Changes)
	}
	if res.Regions[1].Cluster.Status != "CREATE_COMPLETE" {
		t.Errorf("region B after the rerun: %s", res.Regions[1].Cluster.Status)
	}

	// A bad spec for one region's Magnum (400 to its template: exit 2 when
	// alone) is exit 1 while the other region changed, exit 2 when it did
	// not.
	upgraded := e.opts(regionsTestSpec("kube_tag: v1.21.10", "kube_tag: v1.21.14"))
	for i, want := range []int{cli.ExitFailed, cli.ExitUsage} {
		e.Inject(openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Method: "POST", PathContains: "/magnum/RegionTwo/v1/clustertemplates", Status: 400})
		_, err := ClustersEnsure(context.Background(), upgraded)
		if !errors.As(err, &re) || cli.ExitCode(err) != want || !strings.Contains(err.Error(), "region RegionTwo: creating template t-") {
			t.Errorf("run %d with region B refusing the template: exit %d (want %d): %v", i, cli.ExitCode(err), want, err)
		}
		e.AssertFaultsFired()
	}
	if res := e.ensureRegions(upgraded); len(res.Regions[0].Changes) != 0 || len(res.Regions[1].Changes) != 2 {
		t.Errorf("converging region B's upgrade: %q / %q", res.Regions[0].Changes, res.Regions[1].Changes)
	}
}

// TestRegionOptions: --region limits the run to one region (the other gets
// nothing), and the region options that do not fit the spec are user
// errors that change nothing.
func TestRegionOptions(t *testing.T) {
	e := newEnv(t)
	o := e.opts(regionsTestSpec())
	o.Region = "RegionTwo"
	o.Kubeconfig = filepath.Join(e.Dir, "b.kubeconfig")
	res := e.ensureRegions(o)
	if len(res.Regions) != 1 || res.Regions[0].Region != "RegionTwo" || res.Regions[0].Kubeconfig != o.Kubeconfig {
		t.Fatalf("ensure --region RegionTwo: %+v", res.Regions)
	}
	if _, err := os.Stat(o.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	all := e.opts(regionsTestSpec())
	lines, err := InRegions(ClusterDiff, nil)(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	if d := strings.Join(RegionLines(lines), "\n"); !strings.Contains(d, "RegionOne: create cluster c from template t-") || !strings.Contains(d, "RegionTwo: cluster c (CREATE_COMPLETE) matches the spec") {
		t.Errorf("region A should have nothing yet, region B its cluster:\n%s", d)
	}

	plain := e.opts(testSpec())
	for _, tc := range []struct {
		name string
		o    func() Options
		want error
	}{
		{"unknown region", func() Options { x := all; x.Region = "RegionThree"; return x }, ErrUnknownRegion},
		{"unknown region's cloud", func() Options { x := all; x.RegionClouds = map[string]string{"RegionThree": "c"}; return x }, ErrUnknownRegion},
		{"one kubeconfig for two regions", func() Options { x := all; x.Kubeconfig = "k"; return x }, ErrKubeconfigRegions},
		{"region of a spec without regions", func() Options { x := plain; x.Region = "RegionTwo"; return x }, ErrNoRegions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.o().Spec.HasRegions() {
				_, err = ClustersEnsure(context.Background(), tc.o())
			} else {
				_, err = ClusterEnsure(context.Background(), tc.o())
			}
			if !errors.Is(err, tc.want) || cli.ExitCode(err) != cli.ExitUsage {
				t.Errorf("err = %v (exit %d), want %v with exit 2", err, cli.ExitCode(err), tc.want)
			}
		})
	}
	if _, err := ClusterEnsure(context.Background(), all); !errors.Is(err, ErrRegionsSpec) {
		t.Errorf("the single-region ensure of a spec with regions: %v", err)
	}
	// Nothing was created by the refused runs: region A is still empty.
	one := all
	one.Region = "RegionOne"
	if _, err := ClustersShow(context.Background(), one); err == nil {
		t.Error("a refused run created region A's cluster")
	}
}

// TestRegionClouds: a region with a cloud of its own (a clouds.yaml entry,
// as where each region has its own Keystone) logs in with it; the others
// use the cloud of the options. A wrong credential in that entry fails its
// region only.
func TestRegionClouds(t *testing.T) {
	e := newEnv(t)
	clouds := filepath.Join(e.Dir, "clouds.yaml")
	write := func(passwordB string) {
		t.Helper()
		entry := func(password, region string) string {
			return "    auth: {auth_url: " + e.Auth.AuthURL + ", username: " + e.Project + ", password: " + password +
				", project_name: " + e.Project + ", user_domain_name: Default, project_domain_name: Default}\n    region_name: " + region + "\n"
		}
		text := "clouds:\n  site-a:\n" + entry(e.Password, "RegionOne") + "  site-b:\n" + entry(passwordB, "RegionOne")
		if err := os.WriteFile(clouds, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := e.opts(regionsTestSpec())
	o.Auth = osauth.Options{Cloud: "site-a", CloudsFile: clouds, Retry: e.Auth.Retry}
	o.RegionClouds = map[string]string{"RegionTwo": "site-b"}

	write("wrong-" + e.Password)
	_, err := ClustersEnsure(context.Background(), o)
	var re *RegionsError
	if !errors.As(err, &re) || !cmp.Equal(re.Failed, []string{"RegionTwo"}) || !strings.Contains(err.Error(), "region RegionTwo: authenticating to") ||
		!strings.Contains(err.Error(), "rejected (401)") || strings.Contains(err.Error(), e.Password) {
		t.Fatalf("region B with a wrong password in its cloud: %v", err)
	}
	write(e.Password)
	res := e.ensureRegions(o)
	// site-b says region_name RegionOne: the region of the spec wins.
	got := []string{res.Regions[0].Cloud, res.Regions[0].Region, res.Regions[1].Cloud, res.Regions[1].Region}
	if diff := cmp.Diff([]string{"site-a", "RegionOne", "site-b", "RegionTwo"}, got); diff != "" {
		t.Errorf("clouds and regions (-want +got):\n%s", diff)
	}
}
