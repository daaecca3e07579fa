package magnum

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/osauth"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/zuul"
)

// env is one test's own user and project on the shared emulator, so its
// clusters and injected faults do not meet other tests'.
type env struct {
	t        *testing.T
	admin    openstackemu.Admin
	project  string
	password string
	auth     osauth.Options
	dir      string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	vals := testenv.Require(t, "SLIPWAY_TEST_OS_AUTH_URL", "SLIPWAY_TEST_OS_EMULATOR_ADMIN")
	e := &env{t: t, admin: openstackemu.Admin{URL: vals[1]}, dir: t.TempDir()}
	e.project = strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + time.Now().Format("150405.000000")
	e.password = "pw-" + e.project + "-Zq9x"
	if err := e.admin.AddUser(context.Background(), openstackemu.User{Name: e.project, Password: e.password, Project: e.project}); err != nil {
		t.Fatal(err)
	}
	e.auth = osauth.Options{AuthURL: vals[0], Username: e.project, Password: logging.Secret(e.password), UserDomainName: "Default",
		ProjectName: e.project, Region: "RegionOne", Retry: &httpx.RetryPolicy{Attempts: 3, Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}}
	return e
}

func (e *env) inject(f openstackemu.Fault) {
	e.t.Helper()
	f.Project = e.project
	if err := e.admin.Inject(context.Background(), f); err != nil {
		e.t.Fatal(err)
	}
}

// spec returns goodSpec-like text for cluster "c" with the given edits.
func testSpec(edits ...string) string {
	s := `template:
  name: t
  image: fedora-coreos-34
  keypair: kp
  master_lb_enabled: true
  floating_ip_enabled: true
  labels:
    kube_tag: v1.21.10
cluster:
  name: c
  master_count: 3
  node_count: 2
  min_node_count: 1
  max_node_count: 4
`
	for i := 0; i+1 < len(edits); i += 2 {
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	return s
}

// opts parses spec text into Options that print into out.
func (e *env) opts(specText string, out *bytes.Buffer) Options {
	e.t.Helper()
	spec, err := LoadSpec(strings.NewReader(specText), "spec.yaml")
	if err != nil {
		e.t.Fatal(err)
	}
	return Options{Auth: e.auth, Spec: spec, SpecFile: "spec.yaml", Out: out, PollInterval: 100 * time.Millisecond,
		MaxPollInterval: 300 * time.Millisecond, WaitTimeout: time.Minute, ResultFile: filepath.Join(e.dir, "result.json")}
}

func (e *env) ensure(specText string) *result.ClusterResult {
	e.t.Helper()
	var out bytes.Buffer
	if err := ClusterEnsure(context.Background(), e.opts(specText, &out)); err != nil {
		e.t.Fatalf("cluster ensure: %v", err)
	}
	var res result.ClusterResult
	if err := result.Decode(&out, &res); err != nil {
		e.t.Fatalf("stdout is not a ClusterResult: %v", err)
	}
	var file result.ClusterResult
	if err := result.ReadFile(filepath.Join(e.dir, "result.json"), &file); err != nil {
		e.t.Fatal(err)
	}
	if diff := cmp.Diff(res, file); diff != "" {
		e.t.Errorf("stdout and result file differ (-stdout +file):\n%s", diff)
	}
	return &res
}

func (e *env) diff(specText string) string {
	e.t.Helper()
	var out bytes.Buffer
	if err := ClusterDiff(context.Background(), e.opts(specText, &out)); err != nil {
		e.t.Fatalf("cluster diff: %v", err)
	}
	return out.String()
}

func TestCreateFromNothingThenNothingToDo(t *testing.T) {
	e := newEnv(t)
	spec := testSpec()
	if d := e.diff(spec); !strings.Contains(d, "create template t-") || !strings.Contains(d, "create cluster c from template t-") {
		t.Errorf("plan for nothing:\n%s", d)
	}
	zr := filepath.Join(e.dir, "zuul-return.json")
	var out bytes.Buffer
	o := e.opts(spec, &out)
	o.ZuulReturn = zr
	z, err := zuul.Load(strings.NewReader("zuul: {pipeline: check, change: '4242', patchset: '3', project: {name: ops/platform}}\n"), "vars.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o.Zuul = z
	if err := ClusterEnsure(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var res result.ClusterResult
	if err := result.Decode(&out, &res); err != nil {
		t.Fatal(err)
	}
	c := res.Cluster
	got := []any{c.Name, c.Status, c.MasterCount, c.NodeCount, c.MinNodeCount, *c.MaxNodeCount, c.COEVersion, res.Region, len(res.Changes)}
	want := []any{"c", "CREATE_COMPLETE", 3, 2, 1, 4, "v1.21.10", "RegionOne", 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("created cluster (-want +got):\n%s", diff)
	}
	if res.Zuul == nil || res.Zuul.Change != "4242" || res.Zuul.Pipeline != "check" {
		t.Errorf("the result does not record the change: %+v", res.Zuul)
	}
	if c.UUID == "" || c.APIAddress == "" || !isVersionOf(res.Template.Name, "t") || res.Template.UUID == "" {
		t.Errorf("result lacks identifiers: %+v", res)
	}
	var ret map[string]any
	data, err := os.ReadFile(zr)
	if err != nil || json.Unmarshal(data, &ret) != nil {
		t.Fatalf("zuul_return file: %v %s", err, data)
	}
	if ret["slipway_cluster"].(map[string]any)["uuid"] != c.UUID {
		t.Errorf("zuul_return vars: %s", data)
	}

	// Second run: nothing changes and the result says so.
	again := e.ensure(spec)
	if len(again.Changes) != 0 || again.Cluster.UUID != c.UUID || again.Cluster.Status != "CREATE_COMPLETE" {
		t.Errorf("second run: changes %v, uuid %s, status %s", again.Changes, again.Cluster.UUID, again.Cluster.Status)
	}
	if d := e.diff(spec); !strings.Contains(d, "matches the spec: no changes") {
		t.Errorf("diff after ensure:\n%s", d)
	}
}

func TestResizeAndBounds(t *testing.T) {
	e := newEnv(t)
	first := e.ensure(testSpec())
	// More workers than the current maximum: the bounds widen first.
	spec := testSpec("node_count: 2", "node_count: 6", "max_node_count: 4", "max_node_count: 8")
	d := e.diff(spec)
	for _, want := range []string{"resize cluster c workers 2 -> 6", "[1, 8]"} {
		if !strings.Contains(d, want) {
			t.Errorf("plan lacks %q:\n%s", want, d)
		}
	}
	res := e.ensure(spec)
	if got := []any{res.Cluster.NodeCount, res.Cluster.MinNodeCount, *res.Cluster.MaxNodeCount, res.Cluster.UUID}; !cmp.Equal(got, []any{6, 1, 8, first.Cluster.UUID}) {
		t.Errorf("after resize: %v", got)
	}
	if !strings.Contains(strings.Join(res.Changes, "\n"), "resized workers 2 -> 6") {
		t.Errorf("changes: %v", res.Changes)
	}
	// Bounds only: the nodegroup is patched, the workers stay.
	res = e.ensure(strings.Replace(spec, "min_node_count: 1", "min_node_count: 3", 1))
	if res.Cluster.MinNodeCount != 3 || res.Cluster.NodeCount != 6 || len(res.Changes) != 1 {
		t.Errorf("after bounds change: min %d nodes %d changes %v", res.Cluster.MinNodeCount, res.Cluster.NodeCount, res.Changes)
	}
}

func TestTemplateChangeUpgradesTheCluster(t *testing.T) {
	e := newEnv(t)
	first := e.ensure(testSpec())
	spec := testSpec("kube_tag: v1.21.10", "kube_tag: v1.21.14")
	var out bytes.Buffer
	if err := TemplateDiff(context.Background(), e.opts(spec, &out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `template.labels.kube_tag: "v1.21.10" -> "v1.21.14"`) {
		t.Errorf("template diff:\n%s", out.String())
	}
	res := e.ensure(spec)
	if res.Template.Name == first.Template.Name || res.Cluster.COEVersion != "v1.21.14" || res.Cluster.UUID != first.Cluster.UUID {
		t.Errorf("after upgrade: template %s (was %s), coe %s", res.Template.Name, first.Template.Name, res.Cluster.COEVersion)
	}
	if !strings.Contains(strings.Join(res.Changes, "\n"), "upgraded from template "+first.Template.Name) {
		t.Errorf("changes: %v", res.Changes)
	}
	// The old version is unused now and can go; the new one is in use.
	var del bytes.Buffer
	o := e.opts(spec, &del)
	o.AllVersions = true
	if err := TemplateDelete(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(del.String(), first.Template.Name) || strings.Contains(del.String(), res.Template.Name) {
		t.Errorf("template delete --all-versions: %s", del.String())
	}
}

func TestImpossibleChangesExplainAndChangeNothing(t *testing.T) {
	e := newEnv(t)
	first := e.ensure(testSpec())
	for _, tc := range []struct {
		name string
		spec string
		want []string
	}{
		{"downgrade refused by Magnum", testSpec("kube_tag: v1.21.10", "kube_tag: v1.20.1"), []string{"Magnum answered 400", "create a new cluster", "keeps template " + first.Template.Name}},
		{"master count", testSpec("master_count: 3", "master_count: 5"), []string{"master_count 3 -> 5", "cannot resize the masters", "nothing was changed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := ClusterEnsure(context.Background(), e.opts(tc.spec, &out))
			if !errors.Is(err, ErrNotConvergeable) {
				t.Fatalf("err = %v, want ErrNotConvergeable", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if cli.ExitCode(err) != cli.ExitFailed {
				t.Errorf("exit code %d", cli.ExitCode(err))
			}
		})
	}
	var out bytes.Buffer
	if err := ClusterShow(context.Background(), Options{Auth: e.auth, ClusterName: "c", Out: &out}); err != nil {
		t.Fatal(err)
	}
	var res result.ClusterResult
	_ = result.Decode(&out, &res)
	if res.Cluster.MasterCount != 3 || res.Template.UUID != first.Template.UUID || res.Cluster.Status != "CREATE_COMPLETE" {
		t.Errorf("the cluster changed: %+v", res.Cluster)
	}
}

func TestCreateFailedReportsReasonAndFaults(t *testing.T) {
	e := newEnv(t)
	e.inject(openstackemu.Fault{Kind: openstackemu.FaultCreateFailed, Cluster: "c", StatusReason: "Quota exceeded for cores: Requested 24, but already used 80 of 96",
		Faults: map[string]string{"default-worker": "Went to status ERROR due to No valid host was found"}})
	var out bytes.Buffer
	err := ClusterEnsure(context.Background(), e.opts(testSpec(), &out))
	if !errors.Is(err, ErrClusterFailed) || cli.ExitCode(err) != cli.ExitFailed {
		t.Fatalf("err = %v, want ErrClusterFailed with exit 1", err)
	}
	for _, w := range []string{"CREATE_FAILED", "Quota exceeded for cores", "default-worker: Went to status ERROR", "delete the cluster"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	e.assertFaultsFired()
	// A rerun does not pile a second cluster on the failed one.
	err = ClusterEnsure(context.Background(), e.opts(testSpec(), &out))
	if !errors.Is(err, ErrClusterFailed) || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("rerun on a failed cluster: %v", err)
	}
	// Delete, then ensure creates it afresh.
	if err := ClusterDelete(context.Background(), Options{Auth: e.auth, ClusterName: "c", PollInterval: 100 * time.Millisecond, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if res := e.ensure(testSpec()); res.Cluster.Status != "CREATE_COMPLETE" {
		t.Fatalf("after delete and rerun: %s", res.Cluster.Status)
	}
}

func TestStuckClusterTimesOut(t *testing.T) {
	e := newEnv(t)
	e.inject(openstackemu.Fault{Kind: openstackemu.FaultStuck, Cluster: "c"})
	var out bytes.Buffer
	o := e.opts(testSpec(), &out)
	o.WaitTimeout = 2 * time.Second
	start := time.Now()
	err := ClusterEnsure(context.Background(), o)
	if !errors.Is(err, ErrWaitTimeout) || cli.ExitCode(err) != cli.ExitFailed {
		t.Fatalf("err = %v, want ErrWaitTimeout with exit 1", err)
	}
	if !strings.Contains(err.Error(), "still CREATE_IN_PROGRESS") || !strings.Contains(err.Error(), "rerun") {
		t.Errorf("error does not say where it stopped and what to do: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("the timeout was not honoured: %s", time.Since(start))
	}
	if out.Len() != 0 {
		t.Errorf("stdout got output on failure: %s", out.String())
	}
	e.assertFaultsFired()
}

func TestTokenExpiryDuringWaitIsSurvived(t *testing.T) {
	e := newEnv(t)
	// The project's tokens expire on the third status poll of the create.
	e.inject(openstackemu.Fault{Kind: openstackemu.FaultExpireTokens, Method: "GET", PathContains: "/clusters/", After: 2})
	res := e.ensure(testSpec())
	if res.Cluster.Status != "CREATE_COMPLETE" {
		t.Fatalf("status %s", res.Cluster.Status)
	}
	e.assertFaultsFired()
}

// assertFaultsFired checks that every injected fault was used: a test that
// passes without its fault firing proves nothing.
func (e *env) assertFaultsFired() {
	e.t.Helper()
	left, err := e.admin.Faults(context.Background(), e.project)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(left) != 0 {
		e.t.Errorf("faults that never fired: %+v", left)
	}
}

func TestDeleteWaitsAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	e.ensure(testSpec())
	var out bytes.Buffer
	o := e.opts(testSpec(), &out)
	// A template in use cannot be deleted: the error says what to do.
	if err := TemplateDelete(context.Background(), o); err == nil || !strings.Contains(err.Error(), "delete the clusters that use it first") {
		t.Fatalf("deleting a template in use: %v", err)
	}
	for i, want := range []bool{true, false} {
		out.Reset()
		if err := ClusterDelete(context.Background(), o); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
		var got struct{ Deleted bool }
		if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Deleted != want {
			t.Errorf("delete %d: %s", i, out.String())
		}
	}
	if err := ClusterShow(context.Background(), o); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("show after delete: %v", err)
	}
	out.Reset()
	if err := TemplateDelete(context.Background(), o); err != nil || !strings.Contains(out.String(), "t-") {
		t.Errorf("template delete after the cluster: %v %s", err, out.String())
	}
}

func TestTooOldMicroversionIsExplained(t *testing.T) {
	e := newEnv(t)
	e.inject(openstackemu.Fault{Kind: openstackemu.FaultMicroversion, MaxMicroversion: "1.8"})
	var out bytes.Buffer
	err := ClusterEnsure(context.Background(), e.opts(testSpec(), &out))
	if !errors.Is(err, ErrMicroversion) {
		t.Fatalf("err = %v, want ErrMicroversion", err)
	}
	for _, w := range []string{`up to "1.8"`, "needs container-infra 1.10", "RegionOne"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

func TestServerErrorsOnCreateAreNotRetried(t *testing.T) {
	e := newEnv(t)
	e.inject(openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Method: "POST", PathContains: "/clusters", Status: 503})
	e.inject(openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Method: "GET", Status: 502, Count: 2})
	var out bytes.Buffer
	err := ClusterEnsure(context.Background(), e.opts(testSpec(), &out))
	if err == nil || !strings.Contains(err.Error(), "Magnum answered 503") {
		t.Fatalf("err = %v, want the 503 of the create", err)
	}
	// One failed POST, no duplicate: the rerun creates exactly one cluster.
	res := e.ensure(testSpec())
	if res.Cluster.Status != "CREATE_COMPLETE" {
		t.Fatal(res.Cluster.Status)
	}
	var show bytes.Buffer
	if err := ClusterShow(context.Background(), Options{Auth: e.auth, ClusterName: "c", Out: &show}); err != nil {
		t.Fatalf("show (a duplicate cluster would make the name ambiguous): %v", err)
	}
	e.assertFaultsFired()
}
