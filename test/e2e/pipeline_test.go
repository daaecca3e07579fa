// Package e2e runs the whole pipeline (hack/pipeline.sh, the README's main
// job) through the Zuul playbooks against the servers the test runner
// started, and checks each stage's effect on the real servers.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// pipelineCmd is hack/pipeline.sh with args against the test runner's
// servers, in state.
func pipelineCmd(ctx context.Context, t *testing.T, state, rev string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", append([]string{"hack/pipeline.sh"}, args...)...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "SLIPWAY_PIPELINE_SERVERS=env", "SLIPWAY_PIPELINE_DIR="+state,
		"SLIPWAY_PIPELINE_NAMESPACE_PREFIX=e2e-", "SLIPWAY_PIPELINE_REV="+rev,
		"PATH="+filepath.Dir(os.Getenv("SLIPWAY_TEST_MONGODUMP"))+":"+os.Getenv("PATH"))
	return cmd
}

// pipelineRun runs hack/pipeline.sh with args and returns its output and
// how it ended; no secret may show in a process list or the state it
// leaves (sampleSecrets).
func pipelineRun(t *testing.T, state, rev string, args ...string) (string, error) {
	t.Helper()
	defer sampleSecrets(t, state)()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	out, err := pipelineCmd(ctx, t, state, rev, args...).CombinedOutput()
	return string(out), err
}

// pipeline runs hack/pipeline.sh with args, which must succeed.
func pipeline(t *testing.T, state, rev string, args ...string) string {
	t.Helper()
	out, err := pipelineRun(t, state, rev, args...)
	if err != nil {
		t.Fatalf("hack/pipeline.sh %v: %v\n%s", args, err, tail(out, 60))
	}
	return out
}

// kubeClient is a client of the cluster kubeconfig names.
func kubeClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func readResult(t *testing.T, state, job, file string, doc result.Document) {
	t.Helper()
	p := filepath.Join(state, "jobs", job, "logs", "slipway", "results", file)
	if err := result.ReadFile(p, doc); err != nil {
		t.Fatalf("job %s: %v", job, err)
	}
}

// skopeoDigest asks skopeo (a client independent of slipway) for a digest.
func skopeoDigest(t *testing.T, ref string) string {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "skopeo"), "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v", ref, err)
	}
	return strings.TrimSpace(string(out))
}

func mysqlDump(t *testing.T, socket string) string {
	t.Helper()
	out, err := exec.Command("mariadb", "--no-defaults", "-uroot", "-S", socket, "-N", "-e",
		"SELECT id, title, org, HEX(syllabus), created FROM openedx.courses ORDER BY id; SELECT * FROM openedx.enrollments ORDER BY 1, 2").CombinedOutput()
	if err != nil {
		t.Fatalf("reading openedx at %s: %v\n%s", socket, err, out)
	}
	return string(out)
}

func TestPipelineEndToEnd(t *testing.T) {
	env := testenv.Require(t, "SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_B", "SLIPWAY_TEST_REGISTRY_B_NODE",
		"SLIPWAY_TEST_KUBECONFIG", "SLIPWAY_TEST_OS_AUTH_URL", "SLIPWAY_TEST_MARIADB_PRIMARY_SOCKET",
		"SLIPWAY_TEST_MARIADB_DR_SOCKET", "SLIPWAY_TEST_MONGO_PRIMARY_URI", "SLIPWAY_TEST_S3_ENDPOINT", "SLIPWAY_TEST_MONGODUMP",
		"SLIPWAY_TEST_NODE_REGISTRY_NAME", "SLIPWAY_TEST_NODE_REGISTRY", "SLIPWAY_TEST_KUBE_B_KUBECONFIG")
	regA, regB, regBNode, kubeconfig := env[0], env[1], env[2], env[3]
	primarySock, drSock := env[5], env[6]
	nodeReg, nodeRegAddr := env[10], env[11]
	testenv.Tool(t, "ansible-playbook")
	state := t.TempDir()
	// One commit for every run of this test, so reruns build the same digests.
	revOut, err := exec.Command("git", "-C", testenv.RepoRoot(), "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := strings.TrimSpace(string(revOut))

	out := pipeline(t, state, rev)
	if !strings.Contains(out, "pipeline post for platform/demo: SUCCESS") {
		t.Fatalf("no success line:\n%s", tail(out, 40))
	}

	// Build and push: every image in both regions, by the same digest,
	// as an independent client sees it; region B also through the node
	// registry that reads the same Swift container.
	var build result.BuildResult
	readResult(t, state, "slipway-build-image", "build-result.json", &build)
	var push result.PushResult
	readResult(t, state, "slipway-push-registry", "push-result.json", &push)
	if len(push.Images) != len(build.Images) || len(build.Images) == 0 {
		t.Fatalf("built %d images, pushed %d", len(build.Images), len(push.Images))
	}
	built := map[string]string{}
	for _, im := range build.Images {
		built[im.Name] = im.ManifestDigest
	}
	for _, im := range push.Images {
		if im.Digest != built[im.Name] {
			t.Errorf("image %s: pushed %s, built %s", im.Name, im.Digest, built[im.Name])
		}
		// The regions are storage-backed (push-registry ran its own
		// registry on each region's Swift container): the nodes pull the
		// node address, the same path on localhost:5000.
		for _, r := range im.Regions {
			path := strings.SplitN(r.Repository, "/", 2)[1]
			if want := nodeReg + "/" + path; r.NodeRepository != want {
				t.Errorf("image %s region %s: node repository %q, want %q", im.Name, r.Region, r.NodeRepository, want)
			}
		}
		// Every registry on the regions' containers serves it: the env's
		// registries A and B, region B's node registry and node-a0's.
		for _, host := range []string{regA, regB, regBNode, nodeRegAddr} {
			repo := host + "/" + strings.SplitN(im.Regions[0].Repository, "/", 2)[1]
			if got := skopeoDigest(t, repo+"@"+im.Digest); got != im.Digest {
				t.Errorf("%s@%s: skopeo sees %s", repo, im.Digest, got)
			}
		}
		if len(im.Regions) != 2 {
			t.Errorf("image %s pushed to %d regions, want 2", im.Name, len(im.Regions))
		}
	}

	// Clusters: one per region, converged on the emulator.
	var clusters result.ClustersResult
	readResult(t, state, "slipway-magnum-cluster", "cluster-result.json", &clusters)
	for _, region := range []string{"RegionOne", "RegionTwo"} {
		if _, err := clusters.In(region); err != nil || len(clusters.Regions) != 2 {
			t.Fatalf("cluster result has regions %+v, want RegionOne and RegionTwo", clusters.Regions)
		}
	}
	for _, c := range clusters.Regions {
		if c.Cluster.Status != "CREATE_COMPLETE" && c.Cluster.Status != "UPDATE_COMPLETE" {
			t.Errorf("cluster in %s: status %s", c.Region, c.Cluster.Status)
		}
	}

	// Deploy: the objects are in the branch's namespace, pinned to region
	// A's digests at the node address (localhost:5000), as Magnum's nodes
	// pull.
	var deploy result.DeployResult
	readResult(t, state, "slipway-deploy-k8s", "deploy-result.json", &deploy)
	if deploy.Namespace != "e2e-demo" {
		t.Fatalf("deployed into %q, want e2e-demo", deploy.Namespace)
	}
	kc := kubeClient(t, kubeconfig)
	ctx := context.Background()
	deps, err := kc.AppsV1().Deployments("e2e-demo").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) == 0 {
		t.Fatal("no Deployments in namespace e2e-demo")
	}
	pinned := 0
	for _, d := range deps.Items {
		for _, c := range d.Spec.Template.Spec.Containers {
			if strings.HasPrefix(c.Image, regA+"/") || strings.HasPrefix(c.Image, regB+"/") {
				t.Errorf("deployment %s container %s: %s is pinned to a CI registry address, not the node's %s", d.Name, c.Name, c.Image, nodeReg)
			}
			if strings.HasPrefix(c.Image, nodeReg+"/") {
				if !strings.Contains(c.Image, "@sha256:") {
					t.Errorf("deployment %s container %s: %s is not pinned by digest", d.Name, c.Name, c.Image)
				}
				pinned++
			}
		}
		if d.Status.ReadyReplicas != *d.Spec.Replicas {
			t.Errorf("deployment %s: %d/%d ready", d.Name, d.Status.ReadyReplicas, *d.Spec.Replicas)
		}
	}
	if pinned == 0 {
		t.Errorf("no container runs an image from %s", nodeReg)
	}
	checkRealNode(t, kc, "e2e-demo", state, &push)
	checkCronJobs(t, kc, "e2e-demo", []string{"create", "prune"}, knownSecrets())
	checkStandby(t, env[12], "e2e-demo", state, &push)

	// Backup: each CronJob run once in its cluster, the backup image in a
	// real container (the digest pushed to that site's region); the DR
	// site now holds the primary's data.
	backupDigest := map[string]string{}
	for _, im := range push.Images {
		if im.Name == "backup" {
			for _, r := range im.Regions {
				backupDigest[r.Region] = r.Digest
			}
		}
	}
	for _, j := range []struct{ file, cronjob, region string }{
		{"backup-create-job.json", "slipway-backup-create", "a"},
		{"backup-restore-job.json", "slipway-backup-restore", "b"},
		{"backup-status-job.json", "slipway-backup-status", "b"},
		{"backup-prune-job.json", "slipway-backup-prune", "a"},
	} {
		var run result.DeployResult
		readResult(t, state, "slipway-backup-verify", j.file, &run)
		if len(run.Jobs) != 1 || run.Jobs[0].CronJob != j.cronjob || !run.Jobs[0].Succeeded {
			t.Fatalf("backup drill %s: jobs %+v, want %s run once, succeeded", j.file, run.Jobs, j.cronjob)
		}
		if got := run.Jobs[0].ImageDigest; got == "" || got != backupDigest[j.region] {
			t.Errorf("backup drill %s: the Job ran image digest %q, want the backup image's %q in region %s", j.cronjob, got, backupDigest[j.region], j.region)
		}
	}
	var verified result.BackupResult
	readResult(t, state, "slipway-backup-verify", "backup-verify.json", &verified)
	if verified.Backup == nil || verified.Backup.ID == "" {
		t.Fatalf("verify result names no backup: %+v", verified)
	}
	if want, got := mysqlDump(t, primarySock), mysqlDump(t, drSock); want != got || !strings.Contains(got, "Backups that restore") {
		t.Errorf("DR data differs from primary:\nprimary:\n%s\nDR:\n%s", want, got)
	}

	// No secret value reached the logs or results.
	secrets := []string{os.Getenv("SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_SECRET"), os.Getenv("SLIPWAY_TEST_S3_SECRET_KEY")}
	_ = filepath.WalkDir(filepath.Join(state, "jobs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(p, string(filepath.Separator)+"logs"+string(filepath.Separator)) {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, s := range secrets {
			if s != "" && strings.Contains(string(data), s) {
				t.Errorf("%s contains a secret value", p)
			}
		}
		return nil
	})

	// Idempotent: a second run deploys nothing new.
	pipeline(t, state, rev)
	var again result.DeployResult
	readResult(t, state, "slipway-deploy-k8s", "deploy-result.json", &again)
	if again.Changed || again.Revision != deploy.Revision {
		t.Errorf("second run changed the namespace: revision %d -> %d, changed=%v", deploy.Revision, again.Revision, again.Changed)
	}
	var againDR result.DeployResult
	readResult(t, state, "slipway-deploy-k8s-dr", "deploy-result.json", &againDR)
	if againDR.Changed || againDR.Mode != "standby" {
		t.Errorf("second run changed the DR site: changed=%v mode=%s", againDR.Changed, againDR.Mode)
	}

	// Keep the two-region push result for the re-deploy below.
	pushFile := filepath.Join(state, "jobs", "slipway-push-registry", "logs", "slipway", "results", "push-result.json")
	firstPush := filepath.Join(state, "first-push.json")
	data, err := os.ReadFile(pushFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(firstPush, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Manual rerun: push to region B only, from the earlier build.
	pipeline(t, state, rev, "rerun", "slipway-push-registry", "-e", "slipway_push_regions=[b]")
	var repush result.PushResult
	readResult(t, state, "slipway-push-registry", "push-result.json", &repush)
	for _, im := range repush.Images {
		if len(im.Regions) != 1 || im.Regions[0].Region != "b" || im.Digest != built[im.Name] {
			t.Errorf("rerun pushed %s to %+v, want region b only with digest %s", im.Name, im.Regions, built[im.Name])
		}
	}

	// Manual rerun: re-deploy the namespace from a given push result file;
	// the same digests, so nothing changes.
	pipeline(t, state, rev, "rerun", "slipway-deploy-k8s", "-e", "slipway_push_result_file="+firstPush)
	var redeploy result.DeployResult
	readResult(t, state, "slipway-deploy-k8s", "deploy-result.json", &redeploy)
	if redeploy.Namespace != "e2e-demo" || redeploy.Changed {
		t.Errorf("re-deploy from %s: namespace %s changed=%v", firstPush, redeploy.Namespace, redeploy.Changed)
	}

	// Failover to the DR site and back (failover_test.go).
	checkFailover(t, sites{ns: "e2e-demo", a: kc, b: kubeClient(t, env[12]), sockA: primarySock, sockB: drSock, state: state, rev: rev, work: filepath.Join(state, "work"), push: firstPush})
}
