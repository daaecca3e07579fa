package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/usererr"
)

// The example tree applies 4 ConfigMaps, 2 PVCs, 5 Services and 7
// Deployments; its Namespace is dropped and its 2 Jobs are templates.
const exampleApplied = 18

func actions(res *result.DeployResult) map[string]string {
	m := map[string]string{}
	for _, o := range res.Objects {
		m[o.Kind+"/"+o.Name] = o.Action
	}
	return m
}

func TestDeployFirstAndNoChange(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	_, branch, ns, opts, dOpenedx := k.example(t, "first")

	res, err := Deploy(ctx, opts)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if res.Namespace != ns || res.Revision != 1 || !res.Changed || res.Created != exampleApplied || res.Configured != 0 || res.Unchanged != 0 {
		t.Fatalf("first deploy result: namespace %s revision %d changed %t created %d configured %d unchanged %d; want %s 1 true %d 0 0",
			res.Namespace, res.Revision, res.Changed, res.Created, res.Configured, res.Unchanged, ns, exampleApplied)
	}

	// Images are pinned by digest from region A of the push result.
	wantLMS := "registry-a.example:5000/overhangio/openedx@" + dOpenedx
	if got := k.deploymentImage(t, ns, "lms"); got != wantLMS {
		t.Errorf("lms image = %q, want %q", got, wantLMS)
	}
	if got := k.deploymentImage(t, ns, "redis"); got != "docker.io/redis:7.4.1" {
		t.Errorf("redis image = %q, want the allowed image as written", got)
	}
	// The namespace records its owner; objects are ApplySet members applied
	// by field manager slipway with server-side apply.
	nsObj, err := k.Core.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nsObj.Annotations[annBranch] != branch {
		t.Errorf("namespace owner annotation = %q, want %q", nsObj.Annotations[annBranch], branch)
	}
	svc, err := k.Core.CoreV1().Services(ns).Get(ctx, "lms", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Labels[labelPartOf] != applySetID(ns) {
		t.Errorf("Service lms part-of label = %q, want %q", svc.Labels[labelPartOf], applySetID(ns))
	}
	var ssa bool
	for _, mf := range svc.ManagedFields {
		if mf.Manager == fieldManager && mf.Operation == metav1.ManagedFieldsOperationApply {
			ssa = true
		}
	}
	if !ssa {
		t.Errorf("Service lms has no server-side apply entry for manager %s: %+v", fieldManager, svc.ManagedFields)
	}
	parent, err := k.Core.CoreV1().Secrets(ns).Get(ctx, applySetParentName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantGKs := "ConfigMap,Deployment.apps,PersistentVolumeClaim,Service"
	if parent.Labels[labelApplySetID] != applySetID(ns) || parent.Annotations[annApplySetGKs] != wantGKs || parent.Annotations[annApplySetTooling] != applySetTooling {
		t.Errorf("ApplySet parent labels %v annotations %v; want id %s, group-kinds %s", parent.Labels, parent.Annotations, applySetID(ns), wantGKs)
	}
	// Every Deployment rolled out (kwok made its pods ready).
	deps, err := k.Core.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		if d.Status.AvailableReplicas != *d.Spec.Replicas {
			t.Errorf("Deployment %s: %d of %d replicas available after deploy returned", d.Name, d.Status.AvailableReplicas, *d.Spec.Replicas)
		}
	}
	// The result file and zuul_return, as deploy-k8s writes them, say the same.
	resultFile, zuulFile := filepath.Join(t.TempDir(), "deploy.json"), filepath.Join(t.TempDir(), "zuul.json")
	if err := result.WriteFile(resultFile, res, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ZuulReturn(res).WriteFile(zuulFile); err != nil {
		t.Fatal(err)
	}
	var fromFile result.DeployResult
	if err := result.ReadFile(resultFile, &fromFile); err != nil {
		t.Fatal(err)
	}
	if fromFile.Revision != 1 || fromFile.Namespace != ns || len(fromFile.Images) != 2 {
		t.Errorf("result file: revision %d namespace %s images %v", fromFile.Revision, fromFile.Namespace, fromFile.Images)
	}
	zr, err := os.ReadFile(zuulFile)
	if err != nil || !strings.Contains(string(zr), `"namespace": "`+ns+`"`) || !strings.Contains(string(zr), dOpenedx) {
		t.Errorf("zuul_return file lacks namespace or digest: %s (%v)", zr, err)
	}

	// Re-deploy with no change: nothing applied, no new revision.
	before := resourceVersions(t, k, ns)
	res2, err := Deploy(ctx, opts)
	if err != nil {
		t.Fatalf("re-deploy: %v", err)
	}
	if res2.Changed || res2.Revision != 1 || res2.Unchanged != exampleApplied || res2.Created+res2.Configured+len(res2.Pruned) != 0 {
		t.Errorf("no-change re-deploy: changed %t revision %d created %d configured %d unchanged %d pruned %d; want false 1 0 0 %d 0",
			res2.Changed, res2.Revision, res2.Created, res2.Configured, res2.Unchanged, len(res2.Pruned), exampleApplied)
	}
	if diff := cmp.Diff(before, resourceVersions(t, k, ns)); diff != "" {
		t.Errorf("no-change re-deploy modified objects (-before +after):\n%s", diff)
	}

	// Drift: someone scales lms by hand; the next deploy puts it back.
	k.scaleByHand(t, ctx, ns, "lms", 5)
	res3, err := Deploy(ctx, opts)
	if err != nil {
		t.Fatalf("deploy after drift: %v", err)
	}
	if got := actions(res3)["Deployment/lms"]; got != "configured" {
		t.Errorf("drifted Deployment/lms action = %q, want configured", got)
	}
	d, _ := k.Core.AppsV1().Deployments(ns).Get(ctx, "lms", metav1.GetOptions{})
	if *d.Spec.Replicas != 2 {
		t.Errorf("lms replicas = %d after re-deploy, want the manifests' 2", *d.Spec.Replicas)
	}
}

// resourceVersions maps every object in ns (of the kinds deployed) to its version.
func resourceVersions(t *testing.T, k kube, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	cms, err := k.Core.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: labelPartOf})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cms.Items {
		out["ConfigMap/"+o.Name] = o.ResourceVersion
	}
	svcs, _ := k.Core.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	for _, o := range svcs.Items {
		out["Service/"+o.Name] = o.ResourceVersion
	}
	deps, _ := k.Core.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	for _, o := range deps.Items {
		out["Deployment/"+o.Name] = o.ResourceVersion
	}
	return out
}

func TestPruneRemovedServiceOnly(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree, _, ns, opts, _ := k.example(t, "prune")
	if _, err := Deploy(ctx, opts); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	// An object slipway does not own, with the same labels as the mfe Service.
	unowned := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "mfe-by-hand", Labels: map[string]string{"app.kubernetes.io/name": "mfe", "app.kubernetes.io/part-of": "openedx"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8002}}, Selector: map[string]string{"app.kubernetes.io/name": "mfe"}},
	}
	if _, err := k.Core.CoreV1().Services(ns).Create(ctx, unowned, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Edit(t, tree, "k8s/services.yml", `---
apiVersion: v1
kind: Service
metadata:
  name: mfe
  labels:
    app.kubernetes.io/name: mfe
spec:
  type: ClusterIP
  ports:
  - port: 8002
    protocol: TCP
  selector:
    app.kubernetes.io/name: mfe
`, "")
	res, err := Deploy(ctx, opts)
	if err != nil {
		t.Fatalf("deploy without the mfe Service: %v", err)
	}
	want := []result.DeployedObject{{Kind: "Service", Name: "mfe", Action: "pruned"}}
	if diff := cmp.Diff(want, res.Pruned); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	if _, err := k.Core.CoreV1().Services(ns).Get(ctx, "mfe", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Service mfe still there after prune (err %v)", err)
	}
	if _, err := k.Core.CoreV1().Services(ns).Get(ctx, "mfe-by-hand", metav1.GetOptions{}); err != nil {
		t.Errorf("unowned Service mfe-by-hand was touched: %v", err)
	}
	for _, name := range []string{"lms", "cms", "caddy", "redis"} {
		if _, err := k.Core.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("Service %s is gone: %v", name, err)
		}
	}
	// The removed object's kind is still in the ApplySet (other Services remain).
	if got := actions(res)["Deployment/mfe"]; got != "unchanged" {
		t.Errorf("Deployment/mfe action = %q, want unchanged", got)
	}
}

func TestNeverReadyDeploymentFails(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree, _, ns, opts, _ := k.example(t, "never")
	// kwok keeps pods with this annotation Running but never Ready.
	deploytest.NeverReady(t, tree, "cms")
	// The whole deploy has 25s: the apply takes a few, the rest is the wait.
	dctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	res, err := Deploy(dctx, opts)
	if err == nil {
		t.Fatal("deploy with a never-ready Deployment succeeded")
	}
	if usererr.Is(err) {
		t.Errorf("exit code 2, want 1: %v", err)
	}
	var werr *WorkloadError
	if !errors.As(err, &werr) || werr.Object != "Deployment.apps/cms" {
		t.Fatalf("error %v: want a WorkloadError for Deployment.apps/cms", err)
	}
	msg := err.Error()
	pods, _ := k.Core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=cms"})
	if len(pods.Items) == 0 || !strings.Contains(msg, "pod "+pods.Items[0].Name) {
		t.Errorf("error does not name the cms pod: %s", msg)
	}
	if !strings.Contains(msg, "condition Ready=False (ContainersNotReady") || !strings.Contains(msg, "deadline exceeded") {
		t.Errorf("error does not name the Ready condition and the timeout: %s", msg)
	}
	// The failed deploy is recorded as such, so rollback skips it.
	if res == nil || res.Revision != 1 {
		t.Fatalf("result %+v: want revision 1 recorded", res)
	}
	rec, err := k.Core.CoreV1().Secrets(ns).Get(ctx, recordName(1), metav1.GetOptions{})
	if err != nil || rec.Annotations[annStatus] != statusFailed {
		t.Errorf("revision 1 record status = %q (%v), want failed", rec.Annotations[annStatus], err)
	}
}

func TestJobs(t *testing.T) {
	k := requireKube(t)
	podLog := testenv.Get(t, "SLIPWAY_TEST_KUBE_POD_LOG")
	logData, err := os.ReadFile(podLog)
	if err != nil {
		t.Fatal(err)
	}
	// The file is in CRI log format: "TIMESTAMP STREAM TAG LINE".
	var logLines []string
	for _, l := range strings.Split(strings.TrimSpace(string(logData)), "\n") {
		if f := strings.SplitN(l, " ", 4); len(f) == 4 {
			logLines = append(logLines, f[3])
		}
	}
	if len(logLines) == 0 {
		t.Fatalf("%s holds no log lines", podLog)
	}
	ctx := testCtx(t)
	tree, _, ns, opts, dOpenedx := k.example(t, "jobs")
	// cms-job fails (kwok fails pods with this annotation); lms-job succeeds.
	failCMSJob(t, tree)
	var out bytes.Buffer
	opts.Out = &out
	opts.Jobs = []string{"lms-job"}
	res, err := Deploy(ctx, opts)
	if err != nil {
		t.Fatalf("deploy with lms-job: %v", err)
	}
	if len(res.Jobs) != 1 || !res.Jobs[0].Succeeded || !res.Jobs[0].Deleted || !strings.HasPrefix(res.Jobs[0].Name, "lms-job-") {
		t.Fatalf("jobs result %+v: want lms-job-* succeeded and deleted", res.Jobs)
	}
	if !strings.Contains(out.String(), res.Jobs[0].Name+": "+logLines[0]) {
		t.Errorf("job log was not streamed with the job's name; got:\n%s", out.String())
	}
	// Templates are never applied as they are.
	if _, err := k.Core.BatchV1().Jobs(ns).Get(ctx, "lms-job", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("template Job lms-job exists in the namespace (err %v)", err)
	}

	// run-job of the failing template: exit 1 with its log, Job kept for inspection.
	opts.Jobs = []string{"cms-job"}
	res, err = RunJob(ctx, opts)
	if err == nil {
		t.Fatal("failing cms-job succeeded")
	}
	if usererr.Is(err) {
		t.Errorf("exit code 2, want 1: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "job failed") || !strings.Contains(msg, "exited 1 (Error)") || !strings.Contains(msg, logLines[len(logLines)-1]) {
		t.Errorf("error lacks the failure and the last log line %q: %s", logLines[len(logLines)-1], msg)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].Succeeded || res.Jobs[0].Deleted {
		t.Fatalf("jobs result %+v: want failed, kept", res.Jobs)
	}
	j, err := k.Core.BatchV1().Jobs(ns).Get(ctx, res.Jobs[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("failed job was not kept: %v", err)
	}
	// run-job uses the live revision's pinned image.
	if got := j.Spec.Template.Spec.Containers[0].Image; got != "registry-a.example:5000/overhangio/openedx@"+dOpenedx {
		t.Errorf("job image = %q, want the deployed digest", got)
	}

	// An unknown template is a usage error.
	opts.Jobs = []string{"nope-job"}
	if _, err := RunJob(ctx, opts); !usererr.Is(err) || !strings.Contains(err.Error(), `"nope-job"`) {
		t.Errorf("unknown job template: %v, want usage error naming it", err)
	}
}

func TestRollback(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree := deploytest.PlatformTree(t)
	push1, d1 := deploytest.WritePush(t, "v1")
	push2, d2 := deploytest.WritePush(t, "v2")
	branch := k.Branch(t, "rollback")
	ns, _ := NamespaceFor(branch, DefaultBranchPrefix, "")
	if _, err := Deploy(ctx, k.opts(t, branch, tree, push1)); err != nil {
		t.Fatal(err)
	}
	// Revision 2: new images and the redis Service removed.
	testenv.Edit(t, tree, "k8s/services.yml", "  name: redis\n", "  name: redis-v2\n")
	res, err := Deploy(ctx, k.opts(t, branch, tree, push2))
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != 2 || k.deploymentImage(t, ns, "lms") != "registry-a.example:5000/overhangio/openedx@"+d2 {
		t.Fatalf("revision %d, lms image %s: want 2 with digest %s", res.Revision, k.deploymentImage(t, ns, "lms"), d2)
	}
	opts := k.opts(t, branch, "", "")
	res, err = Rollback(ctx, opts)
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if res.Revision != 3 || res.RolledBackTo != 1 || res.Action != "rollback" {
		t.Errorf("rollback result: revision %d rolledBackTo %d action %s; want 3, 1, rollback", res.Revision, res.RolledBackTo, res.Action)
	}
	if got := k.deploymentImage(t, ns, "lms"); got != "registry-a.example:5000/overhangio/openedx@"+d1 {
		t.Errorf("after rollback lms image = %s, want digest %s", got, d1)
	}
	if _, err := k.Core.CoreV1().Services(ns).Get(ctx, "redis", metav1.GetOptions{}); err != nil {
		t.Errorf("Service redis not restored by rollback: %v", err)
	}
	if _, err := k.Core.CoreV1().Services(ns).Get(ctx, "redis-v2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Service redis-v2 of revision 2 not pruned by rollback (err %v)", err)
	}
	// Rolling back again returns to the good revision before 3, which is 2.
	res, err = Rollback(ctx, opts)
	if err != nil || res.RolledBackTo != 2 || k.deploymentImage(t, ns, "lms") != "registry-a.example:5000/overhangio/openedx@"+d2 {
		t.Errorf("second rollback: %v, rolledBackTo %d; want 2 with digest %s", err, res.RolledBackTo, d2)
	}
}

func TestTwoBranchesTwoNamespaces(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	suffix := deploytest.RandHex(3)
	branches := []string{"platform/alpha-" + suffix, "platform/beta-" + suffix}
	k.DeleteAtEnd(t, "alpha-"+suffix)
	k.DeleteAtEnd(t, "beta-"+suffix)
	trees := []string{deploytest.PlatformTree(t), deploytest.PlatformTree(t)}
	push, _ := deploytest.WritePush(t, "v1")
	// Deploy both at once.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range branches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Deploy(ctx, k.opts(t, branches[i], trees[i], push))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("deploy %s: %v", branches[i], err)
		}
	}
	// Removing a Service from alpha prunes it there only.
	testenv.Edit(t, trees[0], "k8s/services.yml", "  name: caddy\n", "  name: caddy-alpha\n")
	res, err := Deploy(ctx, k.opts(t, branches[0], trees[0], push))
	if err != nil {
		t.Fatal(err)
	}
	var pruned []string
	for _, o := range res.Pruned {
		pruned = append(pruned, o.Kind+"/"+o.Name)
	}
	if diff := cmp.Diff([]string{"Service/caddy"}, pruned); diff != "" {
		t.Errorf("alpha pruned (-want +got):\n%s", diff)
	}
	nsB, _ := NamespaceFor(branches[1], DefaultBranchPrefix, "")
	if _, err := k.Core.CoreV1().Services(nsB).Get(ctx, "caddy", metav1.GetOptions{}); err != nil {
		t.Errorf("beta's Service caddy was touched by alpha's deploy: %v", err)
	}
	res, err = Deploy(ctx, k.opts(t, branches[1], trees[1], push))
	if err != nil || res.Changed {
		t.Errorf("beta re-deploy after alpha's change: changed %t, err %v; want no change", res.Changed, err)
	}

	// A branch that maps to alpha's namespace is refused, naming the owner.
	clash := "platform/ALPHA_" + suffix
	_, err = Deploy(ctx, k.opts(t, clash, trees[1], push))
	if !usererr.Is(err) || !strings.Contains(err.Error(), "belongs to branch "+branches[0]) {
		t.Errorf("colliding branch %s: %v, want usage error naming owner %s", clash, err, branches[0])
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	push, _ := deploytest.WritePush(t, "v1")
	extra := func(doc string) func(t *testing.T, tree string) {
		return func(t *testing.T, tree string) {
			if err := os.WriteFile(filepath.Join(tree, "k8s", "extra.yml"), []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			testenv.Edit(t, tree, "kustomization.yml", "- k8s/volumes.yml\n", "- k8s/volumes.yml\n- k8s/extra.yml\n")
		}
	}
	tests := []struct {
		name    string
		branch  string
		mutate  func(t *testing.T, tree string)
		opts    func(o *Options)
		wantErr string
	}{
		{name: "branch outside platform/", branch: "feature/x", wantErr: `branch "feature/x" does not start with "platform/"`},
		{name: "reserved namespace", branch: "platform/kube-system", wantErr: `namespace "kube-system", which is reserved`},
		{name: "object in another namespace", mutate: extra("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sneaky, namespace: other-team}\n"),
			opts: func(o *Options) { o.Manifests = []string{filepath.Join(o.Manifests[0], "k8s", "extra.yml")} }, wantErr: `ConfigMap/sneaky is in namespace "other-team"`},
		{name: "cluster-scoped object", mutate: extra("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: grab-all}\nrules: []\n"),
			wantErr: "ClusterRole.rbac.authorization.k8s.io/grab-all is cluster-scoped"},
		{name: "unpushed image", mutate: extra("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: notes}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: notes, image: docker.io/overhangio/openedx-notes:18.0.0}]\n"),
			wantErr: `Deployment.apps/notes container "notes": image "docker.io/overhangio/openedx-notes:18.0.0" was not pushed`},
		{name: "unknown kind", mutate: extra("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"),
			wantErr: "Widget.example.com/w: the cluster does not serve"},
		{name: "invalid object (server-side validation)", mutate: extra("apiVersion: v1\nkind: Service\nmetadata: {name: bad-port}\nspec: {ports: [{port: 70000}]}\n"),
			wantErr: "checking (server-side dry run) Service/bad-port"},
		{name: "misspelt field", mutate: extra("apiVersion: v1\nkind: Service\nmetadata: {name: typo}\nspec: {prots: [{port: 80}]}\n"),
			wantErr: `typo; /v1, Kind=Service): .spec.prots: field not declared in schema`},
		{name: "wrong region", opts: func(o *Options) { o.Region = "Z" }, wantErr: `not pushed to region "Z"`},
		{name: "unknown job", opts: func(o *Options) { o.Jobs = []string{"lms-jobb"} }, wantErr: `job template "lms-jobb" is not in the manifests`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := deploytest.PlatformTree(t)
			if tt.mutate != nil {
				tt.mutate(t, tree)
			}
			branch := tt.branch
			if branch == "" {
				branch = k.Branch(t, "bad")
			}
			opts := k.opts(t, branch, tree, push)
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := Deploy(ctx, opts)
			if err == nil || !usererr.Is(err) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want a usage error (exit 2) containing %q", err, tt.wantErr)
			}
			if ns, nerr := NamespaceFor(branch, DefaultBranchPrefix, ""); nerr == nil {
				// A namespace the refused deploy created must be gone (or going).
				got, gerr := k.Core.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if !apierrors.IsNotFound(gerr) && (gerr != nil || got.DeletionTimestamp == nil) {
					t.Errorf("namespace %s exists after a refused deploy (err %v)", ns, gerr)
				}
				cms, _ := k.Core.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: labelPartOf})
				if len(cms.Items) > 0 {
					t.Errorf("refused deploy applied %d ConfigMaps", len(cms.Items))
				}
			}
		})
	}
}

func TestDiffChangesNothing(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree, _, ns, opts, _ := k.example(t, "diff")
	var out bytes.Buffer
	opts.Out = &out
	if _, err := Diff(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "+ Namespace/"+ns) || !strings.Contains(out.String(), exampleAppliedLine(exampleApplied)) {
		t.Errorf("diff before first deploy:\n%s", out.String())
	}
	if _, err := Deploy(ctx, opts); err != nil {
		t.Fatal(err)
	}
	testenv.Edit(t, tree, "k8s/deployments.yml", "  replicas: 2\n", "  replicas: 3\n")
	testenv.Edit(t, tree, "k8s/services.yml", "  name: mfe\n", "  name: mfe-new\n")
	before := resourceVersions(t, k, ns)
	out.Reset()
	sum, err := Diff(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DiffSummary{Create: 1, Change: 1, Unchanged: exampleApplied - 2, Prune: 1}, sum); diff != "" {
		t.Errorf("diff summary (-want +got):\n%s\n%s", diff, out.String())
	}
	for _, want := range []string{"~ Deployment.apps/lms (-live +new):", "+ Service/mfe-new (create)", "- Service/mfe (prune)", "int64(3)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff output lacks %q:\n%s", want, out.String())
		}
	}
	if diff := cmp.Diff(before, resourceVersions(t, k, ns)); diff != "" {
		t.Errorf("diff changed objects (-before +after):\n%s", diff)
	}
}

func exampleAppliedLine(n int) string {
	return fmt.Sprintf("%d to create, 0 to change, 0 unchanged, 0 to prune", n)
}

func TestServerDown(t *testing.T) {
	ca := testenv.Get(t, "SLIPWAY_TEST_KUBE_CA_CERT")
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	// A port nothing listens on: bind one, note it, close it.
	data := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\", certificate-authority: \"" + ca + "\"}\nusers:\n- name: u\n  user: {token: not-a-real-token-0123456789}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
	if err := os.WriteFile(kc, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	push, _ := deploytest.WritePush(t, "v1")
	opts := Options{Kubeconfig: kc, Branch: "platform/down", Manifests: []string{deploytest.PlatformTree(t)}, PushResult: push, Region: "A",
		AllowImages: []string{"docker.io/*"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Deploy(ctx, opts)
	if err == nil || usererr.Is(err) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("deploy against a dead server: %v, want exit-1 error naming the server", err)
	}
	if strings.Contains(err.Error(), "not-a-real-token") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestInterruptedDeployRecovers(t *testing.T) {
	k := requireKube(t)
	tree, _, ns, opts, _ := k.example(t, "interrupt")
	deploytest.NeverReady(t, tree, "mfe")
	// Interrupt (SIGINT cancels the context) while the deploy waits for
	// mfe alone: once the deploy itself reports every other workload ready
	// (however long a loaded machine takes; the Deployments' status alone
	// can be ahead of the deploy's last look).
	ctx, cancel := context.WithCancel(context.Background())
	oneLeft := make(chan struct{})
	var once sync.Once
	ready := regexp.MustCompile(`(\d+)/(\d+) workloads ready`)
	opts.Progress = progress.New(writerFunc(func(line string) {
		if m := ready.FindStringSubmatch(line); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > 0 && m[2] == strconv.Itoa(n+1) {
				once.Do(func() { close(oneLeft) })
			}
		}
	}), progress.WithTTY(false), progress.WithInterval(0))
	go func() {
		defer cancel()
		select {
		case <-oneLeft:
		case <-testCtx(t).Done():
		}
	}()
	res, err := Deploy(ctx, opts)
	if !errors.Is(err, context.Canceled) || usererr.Is(err) {
		t.Fatalf("interrupted deploy: %v, want context.Canceled (exit 1)", err)
	}
	if !strings.Contains(err.Error(), "Deployment.apps/mfe") {
		t.Errorf("interrupted deploy does not say what it was waiting for: %v", err)
	}
	// The interrupted deploy is on record as failed, with the ApplySet intact.
	if res == nil || res.Revision != 1 {
		t.Fatalf("interrupted deploy result %+v: want revision 1 recorded", res)
	}
	rec, err := k.Core.CoreV1().Secrets(ns).Get(context.Background(), recordName(1), metav1.GetOptions{})
	if err != nil || rec.Annotations[annStatus] != statusFailed {
		t.Fatalf("revision 1: %v status %q, want failed", err, rec.Annotations[annStatus])
	}
	// Rerunning with the fix completes, and a rollback has no good revision
	// before it to return to (the failed one is skipped).
	testenv.Edit(t, tree, "k8s/deployments.yml", "        test.kwok/never-ready: \"true\"\n", "")
	res, err = Deploy(testCtx(t), opts)
	if err != nil || res.Revision != 2 || !res.Changed {
		t.Fatalf("deploy after interrupt: %v, revision %d; want revision 2", err, res.Revision)
	}
	if _, err := Rollback(testCtx(t), opts); !usererr.Is(err) || !strings.Contains(err.Error(), "no good revision before revision 2") {
		t.Errorf("rollback with only a failed earlier revision: %v", err)
	}
}

// writerFunc is an io.Writer that hands each write (a progress line) to f.
type writerFunc func(line string)

func (f writerFunc) Write(p []byte) (int, error) {
	f(string(p))
	return len(p), nil
}
