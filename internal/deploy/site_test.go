package deploy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/usererr"
)

// exampleApps are the example's application Deployments (DefaultScaleDown
// selects them); redis is its data store.
var exampleApps = []string{"caddy", "cms", "cms-worker", "lms", "lms-worker", "mfe"}

// lmsHPA is an extra manifest: the autoscaler of an application.
const lmsHPA = `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: lms}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: lms}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// replicas maps each Deployment of ns to spec.replicas/ready replicas.
func (k kube) replicas(t *testing.T, ns string) map[string]string {
	t.Helper()
	deps, err := k.Core.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range deps.Items {
		out[d.Name] = strings.Join([]string{itoa(int64(*d.Spec.Replicas)), itoa(int64(d.Status.ReadyReplicas))}, "/")
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// wantReplicas is what replicas returns for the example in mode, every
// workload settled.
func wantReplicas(mode string) map[string]string {
	want := map[string]string{"caddy": "1/1", "cms": "1/1", "cms-worker": "1/1", "lms": "2/2", "lms-worker": "1/1", "mfe": "1/1", "redis": "1/1"}
	if mode == ModeStandby {
		for _, a := range exampleApps {
			want[a] = "0/0"
		}
	}
	return want
}

// appPods counts the pods of the example's applications in ns.
func (k kube) appPods(t *testing.T, ns string) int {
	t.Helper()
	pods, err := k.Core.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name in (" + strings.Join(exampleApps, ",") + ")"})
	if err != nil {
		t.Fatal(err)
	}
	return len(pods.Items)
}

// modes lists the namespace's revisions as number:status:mode, oldest first.
func (k kube) modes(t *testing.T, ns string) []string {
	t.Helper()
	return k.revisionList(t, ns, func(r Revision) string {
		return itoa(int64(r.Number)) + ":" + r.Status + ":" + r.state().mode()
	})
}

// checkSite checks a settled site in mode: replicas, no application pods
// in standby, the lms autoscaler only when active, and a healthy status.
func (k kube) checkSite(t *testing.T, ctx context.Context, opts Options, ns, mode string) {
	t.Helper()
	if diff := cmp.Diff(wantReplicas(mode), k.replicas(t, ns)); diff != "" {
		t.Errorf("%s: Deployments spec/ready replicas (-want +got):\n%s", mode, diff)
	}
	if n := k.appPods(t, ns); mode == ModeStandby && n != 0 {
		t.Errorf("standby: %d application pods left after the deploy returned", n)
	}
	_, err := k.Core.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "lms", metav1.GetOptions{})
	if mode == ModeStandby && !apierrors.IsNotFound(err) {
		t.Errorf("standby: the autoscaler of lms is applied (err %v); it would scale lms up", err)
	}
	if mode == ModeActive && err != nil {
		t.Errorf("active: the autoscaler of lms: %v", err)
	}
	opts.Expect = mode
	s, err := Status(ctx, opts)
	if err != nil || !s.Healthy || s.Mode != mode {
		t.Errorf("status of a settled %s site: %+v, %v; want healthy", mode, s, err)
	}
}

// TestStandbyModes: a standby deploy scales the applications to 0 (their
// autoscaler left out, jobs not run) and keeps the data store; switching
// modes records revisions, the same mode again records nothing, and a
// rollback restores the mode of its revision. Status is healthy for each
// settled mode and not for a mismatch or a broken site.
func TestStandbyModes(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree, branch, ns, opts, _ := k.example(t, "standby")
	opts.Manifests = append(opts.Manifests, writeFile(t, "hpa.yaml", lmsHPA, 0o644))
	opts.Jobs = []string{"lms-job"}
	var logs bytes.Buffer
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	standby, active := opts, opts
	standby.Standby = true

	res, err := Deploy(ctx, standby)
	if err != nil {
		t.Fatalf("standby deploy: %v", err)
	}
	if res.Revision != 1 || res.Mode != ModeStandby || len(res.Jobs) != 0 {
		t.Errorf("standby deploy: revision %d mode %q jobs %v; want 1, standby, no jobs", res.Revision, res.Mode, res.Jobs)
	}
	if !strings.Contains(logs.String(), "standby deploy: not running the jobs") {
		t.Errorf("the log does not say the jobs were not run:\n%s", logs.String())
	}
	if jobs, _ := k.Core.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{}); len(jobs.Items) != 0 {
		t.Errorf("a standby deploy ran %d jobs", len(jobs.Items))
	}
	k.checkSite(t, ctx, opts, ns, ModeStandby)
	opts.Expect = ModeActive
	if s, err := Status(ctx, opts); !errors.Is(err, ErrUnhealthy) || s.Healthy || !strings.Contains(err.Error(), "mode is standby, expected active") {
		t.Errorf("status --expect active of a standby: %v; want not healthy, naming the modes", err)
	}
	opts.Expect = ""

	if res, err = Deploy(ctx, standby); err != nil || res.Changed || res.Revision != 1 {
		t.Errorf("standby again: changed %t revision %d err %v; want no change", res.Changed, res.Revision, err)
	}
	if sum, err := Diff(ctx, standby); err != nil || sum.Create+sum.Change+sum.Prune != 0 {
		t.Errorf("diff --standby of the standby: %+v, %v; want nothing to change", sum, err)
	}
	if sum, err := Diff(ctx, active); err != nil || sum.Create != 1 || sum.Change != len(exampleApps) || sum.Prune != 0 {
		t.Errorf("diff (active) of the standby: %+v, %v; want the autoscaler created and the %d applications changed", sum, err, len(exampleApps))
	}
	if res, err = Deploy(ctx, active); err != nil || !res.Changed || res.Revision != 2 || res.Mode != ModeActive || len(res.Jobs) != 1 {
		t.Fatalf("active deploy: %+v, %v; want revision 2, active, the job run", res, err)
	}
	k.checkSite(t, ctx, opts, ns, ModeActive)
	if res, err = Deploy(ctx, standby); err != nil || res.Revision != 3 {
		t.Fatalf("standby after active: %v, want revision 3", err)
	}
	k.checkSite(t, ctx, opts, ns, ModeStandby)

	back := opts
	back.ToRevision = 2
	if res, err = Rollback(ctx, back); err != nil || res.Mode != ModeActive || res.Revision != 4 {
		t.Fatalf("rollback to 2: %v, mode %q revision %d; want active as revision 4", err, res.Mode, res.Revision)
	}
	k.checkSite(t, ctx, opts, ns, ModeActive)
	back.ToRevision = 0
	if res, err = Rollback(ctx, back); err != nil || res.Mode != ModeStandby || res.RolledBackTo != 3 {
		t.Fatalf("rollback: %v, mode %q to %d; want standby, to 3", err, res.Mode, res.RolledBackTo)
	}
	k.checkSite(t, ctx, opts, ns, ModeStandby)
	// A standby's record holds the applications as the manifests have them
	// (and their autoscalers), so that it can be deployed active again.
	recorded := map[string]int64{}
	for _, u := range k.recordedObjects(t, ns, 1) {
		r, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "replicas")
		n, _ := r.(float64) // the record is decoded as JSON
		recorded[u.GetKind()+"/"+u.GetName()] = int64(n)
	}
	if recorded["Deployment/lms"] != 2 || recorded["Deployment/redis"] != 1 {
		t.Errorf("standby revision 1 records lms with %d replicas, redis with %d; want the manifests' 2 and 1", recorded["Deployment/lms"], recorded["Deployment/redis"])
	}
	if _, ok := recorded["HorizontalPodAutoscaler/lms"]; !ok {
		t.Errorf("standby revision 1 does not record the autoscaler of lms")
	}

	// set-mode re-applies the live revision in the other mode, without the
	// manifests; in the same mode it changes nothing.
	set := Options{Kubeconfig: opts.Kubeconfig, Branch: branch, Log: opts.Log, Mode: ModeActive}
	if res, err = SetMode(ctx, set); err != nil || res.Revision != 6 || res.Mode != ModeActive || res.RolledBackTo != 5 || len(res.Jobs) != 0 {
		t.Fatalf("set-mode active: %+v, %v; want revision 6, active, from 5, no jobs", res, err)
	}
	k.checkSite(t, ctx, opts, ns, ModeActive)
	if res, err = SetMode(ctx, set); err != nil || res.Changed || res.Revision != 6 {
		t.Errorf("set-mode active again: changed %t revision %d, %v; want no change", res.Changed, res.Revision, err)
	}
	set.Mode = ModeStandby
	if res, err = SetMode(ctx, set); err != nil || res.Revision != 7 || res.Mode != ModeStandby {
		t.Fatalf("set-mode standby: %v", err)
	}
	k.checkSite(t, ctx, opts, ns, ModeStandby)
	set.Mode = "passive"
	if _, err := SetMode(ctx, set); !usererr.Is(err) || !strings.Contains(err.Error(), `mode "passive": want active or standby`) {
		t.Errorf("set-mode passive: %v, want a user error", err)
	}
	if diff := cmp.Diff([]string{"1:good:standby", "2:good:active", "3:good:standby", "4:good:active", "5:good:standby", "6:good:active", "7:good:standby"}, k.modes(t, ns)); diff != "" {
		t.Errorf("revisions (-want +got):\n%s", diff)
	}

	// Someone scales an application of the standby up: not healthy.
	k.scaleByHand(t, ctx, ns, "lms", 1)
	if s, err := Status(ctx, opts); !errors.Is(err, ErrUnhealthy) || s.Healthy || !strings.Contains(err.Error(), "Deployment.apps/lms has 1 replicas") {
		t.Errorf("status of a standby with lms scaled up: %v", err)
	}

	// An active site whose mfe never gets ready: not healthy.
	deploytest.NeverReady(t, tree, "mfe")
	active.NoWait = true
	active.Jobs = nil
	if _, err := Deploy(ctx, active); err != nil {
		t.Fatal(err)
	}
	s, err := Status(ctx, opts)
	if !errors.Is(err, ErrUnhealthy) || s.Healthy || s.Mode != ModeActive || !strings.Contains(err.Error(), "Deployment.apps/mfe has 0 of 1 replicas ready") {
		t.Errorf("status of an active site with mfe never ready: %v", err)
	}
	roles := map[string]string{}
	for _, w := range s.Workloads {
		roles[w.Name] = w.Role
	}
	if roles["lms"] != RoleApp || roles["redis"] != RoleData {
		t.Errorf("workload roles %v: want lms an app, redis a data store", roles)
	}
}

// TestStandbyDataStoreNotReady: a standby whose data store never gets
// ready is not healthy, and its deploy waits for it (and fails).
func TestStandbyDataStoreNotReady(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree, _, _, opts, _ := k.example(t, "standbydown")
	deploytest.NeverReady(t, tree, "redis")
	opts.Standby = true
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := Deploy(wctx, opts)
	if err == nil || !strings.Contains(err.Error(), "Deployment.apps/redis") {
		t.Errorf("standby deploy with redis never ready: %v; want a failed wait naming redis", err)
	}
	s, err := Status(ctx, opts)
	if !errors.Is(err, ErrUnhealthy) || s.Healthy || !strings.Contains(err.Error(), "Deployment.apps/redis has 0 of 1 replicas ready") {
		t.Errorf("status: %v", err)
	}
}

// TestTwoSites deploys one branch to region A's control plane (active) and
// region B's (standby), each pinned to its own region: a deploy to one
// site never touches the other.
func TestTwoSites(t *testing.T) {
	a := requireKube(t)
	b := kube{deploytest.RequireKubeB(t)}
	ctx := testCtx(t)
	tree := deploytest.PlatformTree(t)
	push, digest := deploytest.WritePush(t, "v1")
	branch := a.Branch(t, "sites")
	b.DeleteAtEnd(t, strings.TrimPrefix(branch, "platform/"))
	ns, _ := NamespaceFor(branch, DefaultBranchPrefix, "")
	optsA := a.opts(t, branch, tree, push)
	optsB := b.opts(t, branch, tree, push)
	optsB.Region, optsB.Standby = "B", true

	if _, err := Deploy(ctx, optsA); err != nil {
		t.Fatalf("site A: %v", err)
	}
	before := resourceVersions(t, a, ns)
	res, err := Deploy(ctx, optsB)
	if err != nil || res.Mode != ModeStandby || res.Revision != 1 {
		t.Fatalf("site B: %v", err)
	}
	if diff := cmp.Diff(before, resourceVersions(t, a, ns)); diff != "" {
		t.Errorf("the standby deploy at B changed site A (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(wantReplicas(ModeStandby), b.replicas(t, ns)); diff != "" {
		t.Errorf("site B replicas (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantReplicas(ModeActive), a.replicas(t, ns)); diff != "" {
		t.Errorf("site A replicas (-want +got):\n%s", diff)
	}
	if got := b.deploymentImage(t, ns, "lms"); got != "registry-b.example:5000/overhangio/openedx@"+digest {
		t.Errorf("site B lms image %s, want region B's", got)
	}
	if got := a.deploymentImage(t, ns, "lms"); got != "registry-a.example:5000/overhangio/openedx@"+digest {
		t.Errorf("site A lms image %s, want region A's", got)
	}
	for _, c := range []struct {
		k    kube
		opts Options
		mode string
	}{{a, optsA, ModeActive}, {b, optsB, ModeStandby}} {
		c.opts.Expect = c.mode
		if s, err := Status(ctx, c.opts); err != nil || !s.Healthy {
			t.Errorf("status %s: %v", c.mode, err)
		}
	}
	// Failing over: B active, A standby; each deploy leaves the other site.
	optsB.Standby = false
	beforeA := resourceVersions(t, a, ns)
	if res, err := Deploy(ctx, optsB); err != nil || res.Revision != 2 || res.Mode != ModeActive {
		t.Fatalf("site B active: %v", err)
	}
	if diff := cmp.Diff(beforeA, resourceVersions(t, a, ns)); diff != "" {
		t.Errorf("the active deploy at B changed site A (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1:good:active"}, a.modes(t, ns)); diff != "" {
		t.Errorf("site A revisions (-want +got):\n%s", diff)
	}
}

const backupCronJob = `apiVersion: batch/v1
kind: CronJob
metadata: {name: backup-create, labels: {app.kubernetes.io/name: slipway-backup}}
spec:
  schedule: "15 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: backup
            image: registry.example:5000/slipway/backup:1.0
            args: [create, --site, primary]
            env:
            - name: SLIPWAY_MYSQL_PASSWORD
              valueFrom: {secretKeyRef: {name: backup-mysql, key: password}}
`

// TestBackupCronJobsAndSecrets: extra manifests (the backup CronJobs) are
// deployed with the platform in one ApplySet and revision, their image
// pinned, and pruned when left out; the secrets file's Secrets are applied
// and pruned the same way, and their values are in no result, log line or
// revision record.
func TestBackupCronJobsAndSecrets(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	dBackup := deploytest.DigestOf("backup")
	_, ns, opts := k.backupExample(t, "cron", dBackup)
	cron := writeFile(t, "cronjobs.yaml", backupCronJob, 0o644)
	opts.Manifests = append(opts.Manifests, cron)
	const s3Key, dbPass, dbPass2 = "S3-s3cret-access-key-value", "Db-pa55word-value-1", "Db-pa55word-value-2"
	secrets := writeFile(t, "secrets.yaml", "secrets:\n  backup-s3: {AWS_ACCESS_KEY_ID: AKIAEXAMPLE, AWS_SECRET_ACCESS_KEY: "+s3Key+"}\n  backup-mysql: {password: "+dbPass+"}\n", 0o600)
	opts.SecretsFile = secrets
	var logs bytes.Buffer
	opts.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var everything bytes.Buffer // results and records, searched for values

	res, err := Deploy(ctx, opts)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	addJSON(t, &everything, res)
	cj, err := k.Core.BatchV1().CronJobs(ns).Get(ctx, "backup-create", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image; got != "registry-a.example:5000/slipway/backup@"+dBackup {
		t.Errorf("CronJob image %s, want the pushed digest %s", got, dBackup)
	}
	if cj.Labels[labelPartOf] != applySetID(ns) {
		t.Errorf("CronJob is not an ApplySet member: labels %v", cj.Labels)
	}
	sec, err := k.Core.CoreV1().Secrets(ns).Get(ctx, "backup-mysql", metav1.GetOptions{})
	if err != nil || string(sec.Data["password"]) != dbPass || sec.Labels[labelPartOf] != applySetID(ns) {
		t.Fatalf("Secret backup-mysql: %v, labels %v; want the file's value, an ApplySet member", err, sec.Labels)
	}
	rec := k.record(t, ns, 1)
	everything.Write(rec)
	if !bytes.Contains(rec, []byte(`"secretsHash":"sha256:`)) || !bytes.Contains(rec, []byte(`"backup-mysql"`)) || !bytes.Contains(rec, []byte("CronJob")) {
		t.Errorf("revision 1 does not record the CronJob, the secrets' names and their hash:\n%s", rec)
	}

	if res, err = Deploy(ctx, opts); err != nil || res.Changed {
		t.Errorf("same deploy again: changed %t, %v; want no change", res.Changed, err)
	}
	// A new password: the Secret is updated, no new revision of the manifests.
	os.WriteFile(secrets, []byte("secrets:\n  backup-s3: {AWS_ACCESS_KEY_ID: AKIAEXAMPLE, AWS_SECRET_ACCESS_KEY: "+s3Key+"}\n  backup-mysql: {password: "+dbPass2+"}\n"), 0o600)
	if res, err = Deploy(ctx, opts); err != nil || !res.Changed || actions(res)["Secret/backup-mysql"] != "configured" {
		t.Fatalf("deploy with a new password: %+v %v", res, err)
	}
	addJSON(t, &everything, res)
	if sec, _ := k.Core.CoreV1().Secrets(ns).Get(ctx, "backup-mysql", metav1.GetOptions{}); string(sec.Data["password"]) != dbPass2 {
		t.Errorf("password not updated")
	}

	// Without the CronJobs and backup-mysql: both pruned, a new revision.
	opts.Manifests = opts.Manifests[:1]
	os.WriteFile(secrets, []byte("secrets:\n  backup-s3: {AWS_ACCESS_KEY_ID: AKIAEXAMPLE, AWS_SECRET_ACCESS_KEY: "+s3Key+"}\n"), 0o600)
	if res, err = Deploy(ctx, opts); err != nil || res.Revision != 2 {
		t.Fatalf("deploy without the CronJobs: %v", err)
	}
	addJSON(t, &everything, res)
	var pruned []string
	for _, o := range res.Pruned {
		pruned = append(pruned, o.Kind+"/"+o.Name)
	}
	if diff := cmp.Diff([]string{"CronJob/backup-create", "Secret/backup-mysql"}, pruned); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	// A rollback re-applies the CronJob; the secrets file's Secret stays.
	back := opts
	back.SecretsFile = ""
	if res, err = Rollback(ctx, back); err != nil || res.RolledBackTo != 1 {
		t.Fatalf("rollback: %v", err)
	}
	addJSON(t, &everything, res)
	if _, err := k.Core.BatchV1().CronJobs(ns).Get(ctx, "backup-create", metav1.GetOptions{}); err != nil {
		t.Errorf("CronJob after rollback: %v", err)
	}
	if _, err := k.Core.CoreV1().Secrets(ns).Get(ctx, "backup-s3", metav1.GetOptions{}); err != nil {
		t.Errorf("Secret backup-s3 of the secrets file pruned by the rollback: %v", err)
	}
	for n := 2; n <= 3; n++ {
		everything.Write(k.record(t, ns, n))
	}
	everything.Write(logs.Bytes())
	for _, v := range []string{s3Key, dbPass, dbPass2} {
		for _, enc := range []string{v, b64(v)} {
			if bytes.Contains(everything.Bytes(), []byte(enc)) {
				t.Errorf("a result, log line or revision record holds a secret value (%d bytes)", len(v))
			}
		}
	}
}

// recordedObjects returns the manifests revision n of ns recorded.
func (k kube) recordedObjects(t *testing.T, ns string, n int) []*unstructured.Unstructured {
	t.Helper()
	tgt := &target{c: k.cluster(t), ns: ns}
	revs, err := tgt.revisions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range revs {
		if revs[i].Number == n {
			objs, err := revs[i].manifests()
			if err != nil {
				t.Fatal(err)
			}
			return objs
		}
	}
	t.Fatalf("no revision %d in %s", n, ns)
	return nil
}

func addJSON(t *testing.T, w io.Writer, v any) {
	t.Helper()
	if err := json.NewEncoder(w).Encode(v); err != nil {
		t.Fatal(err)
	}
}

// record returns revision n's record: its annotations, state and unzipped
// manifests.
func (k kube) record(t *testing.T, ns string, n int) []byte {
	t.Helper()
	s, err := k.Core.CoreV1().Secrets(ns).Get(context.Background(), recordName(n), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	addJSON(t, &out, s.Annotations)
	out.Write(s.Data[keyState])
	zr, err := gzip.NewReader(bytes.NewReader(s.Data[keyManifests]))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&out, zr)
	return out.Bytes()
}
