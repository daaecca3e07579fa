package magnum

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum/magnumtest"
	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/zuul"
)

// env is one test's own user and project on the shared emulator.
type env struct{ *magnumtest.Env }

func newEnv(t *testing.T) *env { return &env{magnumtest.New(t)} }

var testSpec = magnumtest.Spec

// opts parses spec text into Options with short polls.
func (e *env) opts(specText string) Options {
	e.T.Helper()
	spec, err := LoadSpec(strings.NewReader(specText), "spec.yaml")
	if err != nil {
		e.T.Fatal(err)
	}
	return Options{Auth: e.Auth, Spec: spec, SpecFile: "spec.yaml", PollInterval: 100 * time.Millisecond,
		MaxPollInterval: 300 * time.Millisecond, WaitTimeout: time.Minute}
}

func (e *env) ensure(specText string) *result.ClusterResult {
	e.T.Helper()
	res, err := ClusterEnsure(context.Background(), e.opts(specText))
	if err != nil {
		e.T.Fatalf("cluster ensure: %v", err)
	}
	return res
}

func (e *env) diff(specText string) string {
	e.T.Helper()
	lines, err := ClusterDiff(context.Background(), e.opts(specText))
	if err != nil {
		e.T.Fatalf("cluster diff: %v", err)
	}
	return strings.Join(lines, "\n")
}

func TestCreateFromNothingThenNothingToDo(t *testing.T) {
	e := newEnv(t)
	spec := testSpec()
	if d := e.diff(spec); !strings.Contains(d, "create template t-") || !strings.Contains(d, "create cluster c from template t-") {
		t.Errorf("plan for nothing:\n%s", d)
	}
	zr := filepath.Join(e.Dir, "zuul-return.json")
	o := e.opts(spec)
	z, err := zuul.Load(strings.NewReader("zuul: {pipeline: check, change: '4242', patchset: '3', project: {name: ops/platform}}\n"), "vars.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o.Zuul = z
	res, err := ClusterEnsure(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := ZuulReturn(res).WriteFile(zr); err != nil {
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
	lines, err := TemplateDiff(context.Background(), e.opts(spec))
	if err != nil {
		t.Fatal(err)
	}
	if d := strings.Join(lines, "\n"); !strings.Contains(d, `template.labels.kube_tag: "v1.21.10" -> "v1.21.14"`) {
		t.Errorf("template diff:\n%s", d)
	}
	res := e.ensure(spec)
	if res.Template.Name == first.Template.Name || res.Cluster.COEVersion != "v1.21.14" || res.Cluster.UUID != first.Cluster.UUID {
		t.Errorf("after upgrade: template %s (was %s), coe %s", res.Template.Name, first.Template.Name, res.Cluster.COEVersion)
	}
	if !strings.Contains(strings.Join(res.Changes, "\n"), "upgraded from template "+first.Template.Name) {
		t.Errorf("changes: %v", res.Changes)
	}
	// The old version is unused now and can go; the new one is in use.
	o := e.opts(spec)
	o.AllVersions = true
	del, err := TemplateDelete(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(del.Deleted, first.Template.Name) || slices.Contains(del.Deleted, res.Template.Name) {
		t.Errorf("template delete with AllVersions: %v", del.Deleted)
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
			_, err := ClusterEnsure(context.Background(), e.opts(tc.spec))
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
	res, err := ClusterShow(context.Background(), Options{Auth: e.Auth, ClusterName: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cluster.MasterCount != 3 || res.Template.UUID != first.Template.UUID || res.Cluster.Status != "CREATE_COMPLETE" {
		t.Errorf("the cluster changed: %+v", res.Cluster)
	}
}

func TestCreateFailedReportsReasonAndFaults(t *testing.T) {
	e := newEnv(t)
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultCreateFailed, Cluster: "c", StatusReason: "Quota exceeded for cores: Requested 24, but already used 80 of 96",
		Faults: map[string]string{"default-worker": "Went to status ERROR due to No valid host was found"}})
	_, err := ClusterEnsure(context.Background(), e.opts(testSpec()))
	if !errors.Is(err, ErrClusterFailed) || cli.ExitCode(err) != cli.ExitFailed {
		t.Fatalf("err = %v, want ErrClusterFailed with exit 1", err)
	}
	for _, w := range []string{"CREATE_FAILED", "Quota exceeded for cores", "default-worker: Went to status ERROR", "delete the cluster"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	e.AssertFaultsFired()
	// A rerun does not pile a second cluster on the failed one.
	_, err = ClusterEnsure(context.Background(), e.opts(testSpec()))
	if !errors.Is(err, ErrClusterFailed) || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("rerun on a failed cluster: %v", err)
	}
	// Delete, then ensure creates it afresh.
	if _, err := ClusterDelete(context.Background(), Options{Auth: e.Auth, ClusterName: "c", PollInterval: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if res := e.ensure(testSpec()); res.Cluster.Status != "CREATE_COMPLETE" {
		t.Fatalf("after delete and rerun: %s", res.Cluster.Status)
	}
}

func TestStuckClusterTimesOut(t *testing.T) {
	e := newEnv(t)
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultStuck, Cluster: "c"})
	o := e.opts(testSpec())
	o.WaitTimeout = 2 * time.Second
	start := time.Now()
	res, err := ClusterEnsure(context.Background(), o)
	if !errors.Is(err, ErrWaitTimeout) || cli.ExitCode(err) != cli.ExitFailed {
		t.Fatalf("err = %v, want ErrWaitTimeout with exit 1", err)
	}
	if !strings.Contains(err.Error(), "still CREATE_IN_PROGRESS") || !strings.Contains(err.Error(), "rerun") {
		t.Errorf("error does not say where it stopped and what to do: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("the timeout was not honoured: %s", time.Since(start))
	}
	if res != nil {
		t.Errorf("a result on failure: %+v", res)
	}
	e.AssertFaultsFired()
}

func TestTokenExpiryDuringWaitIsSurvived(t *testing.T) {
	e := newEnv(t)
	// The project's tokens expire on the third status poll of the create.
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultExpireTokens, Method: "GET", PathContains: "/clusters/", After: 2})
	res := e.ensure(testSpec())
	if res.Cluster.Status != "CREATE_COMPLETE" {
		t.Fatalf("status %s", res.Cluster.Status)
	}
	e.AssertFaultsFired()
}

func TestDeleteWaitsAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	e.ensure(testSpec())
	o := e.opts(testSpec())
	// A template in use cannot be deleted: the error says what to do.
	if _, err := TemplateDelete(context.Background(), o); err == nil || !strings.Contains(err.Error(), "delete the clusters that use it first") {
		t.Fatalf("deleting a template in use: %v", err)
	}
	for i, want := range []bool{true, false} {
		got, err := ClusterDelete(context.Background(), o)
		if err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
		if got.Deleted != want {
			t.Errorf("delete %d: %+v", i, got)
		}
	}
	if _, err := ClusterShow(context.Background(), o); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("show after delete: %v", err)
	}
	del, err := TemplateDelete(context.Background(), o)
	if err != nil || len(del.Deleted) != 1 || !strings.HasPrefix(del.Deleted[0], "t-") {
		t.Errorf("template delete after the cluster: %v %+v", err, del)
	}
}

func TestTooOldMicroversionIsExplained(t *testing.T) {
	e := newEnv(t)
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultMicroversion, MaxMicroversion: "1.8"})
	_, err := ClusterEnsure(context.Background(), e.opts(testSpec()))
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
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Method: "POST", PathContains: "/clusters", Status: 503})
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultHTTPError, Method: "GET", Status: 502, Count: 2})
	_, err := ClusterEnsure(context.Background(), e.opts(testSpec()))
	if err == nil || !strings.Contains(err.Error(), "Magnum answered 503") {
		t.Fatalf("err = %v, want the 503 of the create", err)
	}
	// One failed POST, no duplicate: the rerun creates exactly one cluster.
	res := e.ensure(testSpec())
	if res.Cluster.Status != "CREATE_COMPLETE" {
		t.Fatal(res.Cluster.Status)
	}
	if _, err := ClusterShow(context.Background(), Options{Auth: e.Auth, ClusterName: "c"}); err != nil {
		t.Fatalf("show (a duplicate cluster would make the name ambiguous): %v", err)
	}
	e.AssertFaultsFired()
}

// TestRerunFinishesAnInterruptedOperation: a run that stopped waiting right
// after Magnum accepted the create or the upgrade (as when it is killed)
// leaves the cluster *_IN_PROGRESS; the rerun waits for it, converges,
// and says in its changes that it finished an earlier run's operation; the
// run after that changes nothing.
func TestRerunFinishesAnInterruptedOperation(t *testing.T) {
	upgraded := testSpec("kube_tag: v1.21.10", "kube_tag: v1.21.14")
	for _, tc := range []struct {
		name, before, spec, want string
	}{
		{name: "create", spec: testSpec(), want: "waited for the create an earlier run started (CREATE_IN_PROGRESS)"},
		{name: "upgrade", before: testSpec(), spec: upgraded, want: "waited for the update an earlier run started (UPDATE_IN_PROGRESS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.before != "" {
				e.ensure(tc.before)
			}
			o := e.opts(tc.spec)
			o.WaitTimeout = time.Millisecond
			if _, err := ClusterEnsure(context.Background(), o); !errors.Is(err, ErrWaitTimeout) {
				t.Fatalf("the interrupted run: %v, want it to stop waiting", err)
			}
			res := e.ensure(tc.spec)
			if !strings.HasSuffix(res.Cluster.Status, "_COMPLETE") || len(res.Changes) != 1 || res.Changes[0] != tc.want {
				t.Errorf("rerun: status %s, changes %q; want *_COMPLETE and [%q]", res.Cluster.Status, res.Changes, tc.want)
			}
			if again := e.ensure(tc.spec); len(again.Changes) != 0 {
				t.Errorf("the run after the rerun changed %q", again.Changes)
			}
		})
	}
}
