package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayci/slipway/internal/backup/backuptest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// sites are the two sites of the e2e namespace as a failover test sees
// them: each cluster's client and each site's MySQL socket.
type sites struct {
	ns               string
	a, b             kubernetes.Interface
	sockA, sockB     string
	state, rev, work string
	// push is a push result with both regions (reruns of the deploys).
	push string
}

// failoverReport is what the failover job writes to
// results/failover-report.json.
type failoverReport struct {
	From, To    string
	RTOSeconds  float64 `json:"rtoSeconds"`
	Backup      string  `json:"backup"`
	DataLossWin any     `json:"dataLossWindowSeconds"`
	Steps       []struct {
		Step  string `json:"step"`
		RC    int    `json:"rc"`
		Delta string `json:"delta"`
	} `json:"steps"`
}

// checkFailover runs the failover of the e2e namespace as an operator
// would: a dry run; two refused preflights (a stale backup, an image
// damaged in region B) that change nothing at either site; a failover
// killed after the freeze, undone by unfreeze; another killed after the
// freeze and rerun to the end (DR ready with the primary's data, primary
// frozen, RTO and data-loss window reported); and the unfreeze that
// brings the primary back.
func checkFailover(t *testing.T, s sites) {
	t.Helper()
	// The freeze sets the primary MariaDB's global read_only: no freeze
	// test of the backup packages may run meanwhile (they take the same
	// lock, until this test ends).
	backuptest.NewMariaDB(t, "PRIMARY").FreezeLock(t)
	// A failed run may leave a site frozen: thaw both for the other tests.
	t.Cleanup(func() {
		for _, sock := range []string{s.sockA, s.sockB} {
			_ = exec.Command("mariadb", "--no-defaults", "-uroot", "-S", sock, "-e", "SET GLOBAL read_only = OFF").Run()
		}
	})
	s.expect(t, "before the failover", "active", "standby", false)

	out := pipeline(t, s.state, s.rev, "failover", "--dry-run")
	mustContain(t, out, "pipeline failover for platform/demo: SUCCESS", "failover: dryRun=true from=a plan=freeze-apps,freeze-databases,final-backup,restore-at-dr,dr-active steps=preflight-backup-age:")
	s.expect(t, "after the dry run", "active", "standby", false)

	out, err := pipelineRun(t, s.state, s.rev, "failover", "-e", "slipway_failover_max_age=1s")
	if err == nil {
		t.Fatal("a failover whose newest backup is older than slipway_failover_max_age passed its preflight")
	}
	mustContain(t, out, "preflight-backup-age failed (exit 1)", "Nothing was changed at either site.")
	s.expect(t, "after a stale-backup preflight", "active", "standby", false)

	restore := s.damageRegionB(t)
	out, err = pipelineRun(t, s.state, s.rev, "failover")
	restore()
	if err == nil {
		t.Fatal("a failover with an image blob missing in region B passed its preflight")
	}
	mustContain(t, out, "preflight-dr-images failed (exit 1)", "region b", "Nothing was changed at either site.")
	s.expect(t, "after a missing-image preflight", "active", "standby", false)

	// Killed after the freeze, then undone.
	s.killedAfterFreeze(t)
	s.expect(t, "after a failover killed after the freeze", "standby", "standby", true)
	pipeline(t, s.state, s.rev, "unfreeze")
	s.expect(t, "after unfreeze of an interrupted failover", "active", "standby", false)

	// Killed after the freeze again, then rerun: it resumes and completes.
	s.killedAfterFreeze(t)
	out = pipeline(t, s.state, s.rev, "failover")
	mustContain(t, out, "pipeline failover for platform/demo: SUCCESS", "dataLossWindowSeconds=0 from=a rtoSeconds=")
	s.expect(t, "after the failover", "standby", "active", true)
	if a, b := mysqlDump(t, s.sockA), mysqlDump(t, s.sockB); a != b {
		t.Errorf("after the failover the DR data differs from the frozen primary's:\nprimary:\n%s\nDR:\n%s", a, b)
	}
	var rep failoverReport
	data, err := os.ReadFile(filepath.Join(s.work, "slipway-failover", "results", "failover-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range rep.Steps {
		names = append(names, st.Step)
		if st.RC != 0 {
			t.Errorf("failover report: step %s exit %d", st.Step, st.RC)
		}
	}
	if got, want := strings.Join(names, ","), "preflight-backup-age,preflight-dr-standby,preflight-dr-images,preflight-primary,preflight-dr-fresh,freeze-apps,freeze-databases,final-backup,restore-at-dr,dr-active"; got != want {
		t.Errorf("failover report steps %s, want %s", got, want)
	}
	if rep.RTOSeconds <= 0 || rep.Backup == "" || rep.From != "a" || rep.To != "b" {
		t.Errorf("failover report: %+v", rep)
	}
	// The freeze held from before the final backup's start: nothing
	// written at the primary is missing from it.
	if w, ok := rep.DataLossWin.(float64); !ok || w != 0 {
		t.Errorf("failover report: data-loss window %v, want 0 (the freeze held)", rep.DataLossWin)
	}
	t.Logf("failover RTO %.1f s: %+v", rep.RTOSeconds, rep.Steps)

	checkFailback(t, s)
}

// checkFailback swaps the sites' roles after the failover (B primary with
// the primary CronJobs, A unfrozen and a standby restoring B's backups),
// writes at B, fails back from B to A with the same job, and swaps the
// roles back: A serves again with what B took, B is a standby again.
func checkFailback(t *testing.T, s sites) {
	t.Helper()
	push := "slipway_push_result_file=" + s.push
	swap := func(primary string) {
		t.Helper()
		from, to := map[string]string{"a": "b", "b": "a"}[primary], primary
		// The new primary first (its restore CronJob pruned), then the old
		// one's databases unfrozen, then its DR set.
		deployJob := map[string]string{"a": "slipway-deploy-k8s", "b": "slipway-deploy-k8s-dr"}
		pipeline(t, s.state, s.rev, "rerun", deployJob[to], "-e", "slipway_primary="+primary, "-e", push)
		pipeline(t, s.state, s.rev, "unfreeze", "-e", "slipway_failover_from="+from, "-e", "slipway_failover_to="+to,
			"-e", "slipway_unfreeze_dr_standby=false", "-e", "slipway_unfreeze_activate=false")
		pipeline(t, s.state, s.rev, "rerun", deployJob[from], "-e", "slipway_primary="+primary, "-e", push)
	}
	swap("b")
	s.expectBoth(t, "after the role swap", "standby", "active", false, false)
	s.checkRoles(t, s.b, s.a)
	// The drill with the sites swapped: B backs up, A restores.
	pipeline(t, s.state, s.rev, "rerun", "slipway-backup-verify", "-e", "slipway_failover_from=b", "-e", "slipway_failover_to=a")

	// A write at B, the primary now, that the failback must carry to A.
	if out, err := exec.Command("mariadb", "--no-defaults", "-uroot", "-S", s.sockB, "-e",
		"REPLACE INTO openedx.courses VALUES (4, 'Written at the DR site', 'slipway', NULL, '2026-12-02 12:00:00')").CombinedOutput(); err != nil {
		t.Fatalf("writing at region B: %v\n%s", err, out)
	}
	out := pipeline(t, s.state, s.rev, "failover", "-e", "slipway_failover_from=b", "-e", "slipway_failover_to=a")
	mustContain(t, out, "pipeline failover for platform/demo: SUCCESS", "dataLossWindowSeconds=0 from=b rtoSeconds=")
	s.expectBoth(t, "after the failback", "active", "standby", false, true)
	if a := mysqlDump(t, s.sockA); !strings.Contains(a, "Written at the DR site") || a != mysqlDump(t, s.sockB) {
		t.Errorf("after the failback region A lacks what region B took:\nA:\n%s", a)
	}

	swap("a")
	s.expectBoth(t, "after the roles are swapped back", "active", "standby", false, false)
	s.checkRoles(t, s.a, s.b)
}

// checkRoles checks the backup CronJobs after a role swap: the primary's
// set at primary, the DR set at dr, and neither holds the other's.
func (s sites) checkRoles(t *testing.T, primary, dr kubernetes.Interface) {
	t.Helper()
	checkCronJobs(t, primary, s.ns, []string{"create", "prune", "freeze", "final", "unfreeze"}, knownSecrets())
	checkCronJobs(t, dr, s.ns, []string{"restore", "status"}, knownSecrets())
	noCronJobs(t, primary, s.ns, "restore", "status")
	noCronJobs(t, dr, s.ns, "create", "freeze", "final")
}

// noCronJobs checks that the deploy pruned the backup CronJobs of the
// other role: no CronJob *-<suffix> for each suffix.
func noCronJobs(t *testing.T, kc kubernetes.Interface, ns string, suffixes ...string) {
	t.Helper()
	cjs, err := kc.BatchV1().CronJobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cj := range cjs.Items {
		for _, suf := range suffixes {
			if strings.HasSuffix(cj.Name, "-"+suf) {
				t.Errorf("namespace %s still has CronJob %s of the other role", ns, cj.Name)
			}
		}
	}
}

// expect checks each site's mode by its application Deployments (active:
// every one ready; standby: at 0 replicas), and whether the primary's
// MySQL is read-only (frozen).
func (s sites) expect(t *testing.T, when, modeA, modeB string, frozen bool) {
	t.Helper()
	s.expectBoth(t, when, modeA, modeB, frozen, false)
}

// expectBoth is expect with each site's freeze: frozenA for the MySQL of
// region A, frozenB for region B's.
func (s sites) expectBoth(t *testing.T, when, modeA, modeB string, frozenA, frozenB bool) {
	t.Helper()
	for _, site := range []struct {
		name, mode string
		kc         kubernetes.Interface
	}{{"primary", modeA, s.a}, {"DR", modeB, s.b}} {
		deps, err := site.kc.AppsV1().Deployments(s.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deps.Items {
			if !apps[d.Name] {
				continue
			}
			got, ready := replicas(&d), d.Status.ReadyReplicas
			if site.mode == "active" && (got == 0 || ready != got) || site.mode == "standby" && (got != 0 || ready != 0) {
				t.Errorf("%s: %s site (%s) deployment %s has %d replicas, %d ready; want %s", when, site.name, site.mode, d.Name, got, ready,
					map[string]string{"active": "all ready", "standby": "0"}[site.mode])
			}
		}
	}
	for _, db := range []struct {
		site, sock string
		frozen     bool
	}{{"region A", s.sockA, frozenA}, {"region B", s.sockB, frozenB}} {
		out, err := exec.Command("mariadb", "--no-defaults", "-uroot", "-S", db.sock, "-N", "-e", "SELECT @@global.read_only").CombinedOutput()
		if err != nil {
			t.Fatalf("reading read_only in %s: %v\n%s", db.site, err, out)
		}
		if got := strings.TrimSpace(string(out)) == "1"; got != db.frozen {
			t.Errorf("%s: %s MySQL read_only=%s, want frozen=%v", when, db.site, strings.TrimSpace(string(out)), db.frozen)
		}
	}
}

// killedAfterFreeze starts a failover and kills it (and every process it
// started, SIGKILL) once its steps record the databases' freeze: the
// final backup's Job is then starting or running in the primary cluster.
func (s sites) killedAfterFreeze(t *testing.T) {
	t.Helper()
	steps := filepath.Join(s.work, "slipway-failover", "results", "failover-steps.json")
	if err := os.Remove(steps); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := pipelineCmd(context.Background(), t, s.state, s.rev, "failover")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(15 * time.Minute)
	for {
		select {
		case err := <-done:
			t.Fatalf("the failover ended (%v) before it was killed:\n%s", err, tail(out.String(), 40))
		case <-deadline:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("the failover did not freeze the databases in 15 minutes:\n%s", tail(out.String(), 40))
		case <-time.After(200 * time.Millisecond):
		}
		if data, err := os.ReadFile(steps); err == nil && bytes.Contains(data, []byte(`"freeze-databases"`)) {
			break
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	// Zuul discards the node of a build that died this way, and with it
	// the private files (secrets) the build's cleanup never removed.
	for _, d := range []string{filepath.Join(s.state, "jobs", "slipway-failover", "private"), filepath.Join(s.work, "slipway-failover", "private")} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("failover killed after freeze-databases")
}

// damageRegionB removes, from region B's Swift container, the config blob
// of an image the DR site runs (what a region whose copy is incomplete
// looks like to its registries), and returns what puts it back.
func (s sites) damageRegionB(t *testing.T) (restore func()) {
	t.Helper()
	env := testenv.Require(t, "SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL", "SLIPWAY_TEST_SWIFT_KEYSTONE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN", "SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT", "SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B", "SLIPWAY_TEST_REGISTRY_B")
	ctx := context.Background()
	deps, err := s.b.AppsV1().Deployments(s.ns).Get(ctx, "lms", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pinned := deps.Spec.Template.Spec.Containers[0].Image
	path, digest, ok := strings.Cut(strings.TrimPrefix(pinned, os.Getenv("SLIPWAY_TEST_NODE_REGISTRY_NAME")+"/"), "@")
	if !ok {
		t.Fatalf("DR lms runs %s, not an image pinned at the node registry", pinned)
	}
	ref, err := name.NewDigest(env[7]+"/"+path+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("reading %s from region B: %v", ref, err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: env[0], Username: env[1], Password: env[2], DomainName: env[3], TenantName: env[4]})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: env[5]})
	if err != nil {
		t.Fatal(err)
	}
	container := env[6]
	object := "files/docker/registry/v2/blobs/sha256/" + cfg.Hex[:2] + "/" + cfg.Hex + "/data"
	got := objects.Download(ctx, sc, container, object, nil)
	body, err := got.ExtractContent()
	if err != nil {
		t.Fatalf("reading %s/%s: %v", container, object, err)
	}
	if err := objects.Delete(ctx, sc, container, object, nil).Err; err != nil {
		t.Fatal(err)
	}
	t.Logf("removed blob %s (config of %s) from region B's container %s", cfg, path, container)
	return func() {
		t.Helper()
		if err := objects.Create(ctx, sc, container, object, objects.CreateOpts{Content: bytes.NewReader(body)}).Err; err != nil {
			t.Fatalf("putting blob %s back: %v", cfg, err)
		}
	}
}

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("output lacks %q:\n%s", sub, tail(s, 40))
		}
	}
}
