package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayci/slipway/internal/result"
)

// apps are the application workloads of examples/local that a standby runs
// at 0 replicas (Tutor's names, and static by its component label); redis
// is a data store and keeps its replica.
var apps = map[string]bool{"lms": true, "lms-worker": true, "cms": true, "cms-worker": true, "mfe": true, "caddy": true, "static": true}

// checkStandby checks the DR site the post pipeline deployed in region B:
// the same namespace as the primary's, the application Deployments at 0
// replicas with no pod, the data stores up, every image of the platform
// pinned to region B's digest at its nodes' address.
func checkStandby(t *testing.T, kubeconfigB, ns, state string, push *result.PushResult) {
	t.Helper()
	var dr result.DeployResult
	readResult(t, state, "slipway-deploy-k8s-dr", "deploy-result.json", &dr)
	if dr.Namespace != ns || dr.Mode != "standby" {
		t.Fatalf("DR deploy: namespace %q mode %q, want %q standby", dr.Namespace, dr.Mode, ns)
	}
	kc := kubeClient(t, kubeconfigB)
	ctx := context.Background()
	deps, err := kc.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pinnedB := map[string]string{} // node reference -> digest in region B
	for _, im := range push.Images {
		for _, r := range im.Regions {
			if r.Region == "b" {
				pinnedB[r.NodeRepository+"@"+r.Digest] = im.Name
			}
		}
	}
	seen := map[string]bool{}
	for _, d := range deps.Items {
		seen[d.Name] = true
		want := int32(1)
		if apps[d.Name] {
			want = 0
		}
		if got := replicas(&d); got != want || (want > 0 && d.Status.ReadyReplicas != want) {
			t.Errorf("DR deployment %s: %d replicas (%d ready), want %d", d.Name, got, d.Status.ReadyReplicas, want)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if strings.HasPrefix(c.Image, "localhost:5000/") && pinnedB[c.Image] == "" {
				t.Errorf("DR deployment %s container %s: %s is not a region B digest of the push", d.Name, c.Name, c.Image)
			}
		}
	}
	for name := range apps {
		if !seen[name] {
			t.Errorf("DR site has no Deployment %s", name)
		}
	}
	if !seen["redis"] {
		t.Error("DR site has no data store redis")
	}
	pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name in (lms,cms,static)"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("DR standby runs %d application pods, want none", len(pods.Items))
	}
	checkCronJobs(t, kc, ns, []string{"restore", "status"}, knownSecrets())
}

// knownSecrets are the secret values of the test servers the CronJobs'
// Secrets are made of.
func knownSecrets() []string {
	return []string{os.Getenv("SLIPWAY_TEST_S3_SECRET_KEY"), os.Getenv("SLIPWAY_TEST_MARIADB_PRIMARY_PASSWORD"),
		os.Getenv("SLIPWAY_TEST_MARIADB_DR_PASSWORD"), os.Getenv("SLIPWAY_TEST_MONGO_PRIMARY_URI"), os.Getenv("SLIPWAY_TEST_MONGO_DR_URI")}
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// checkCronJobs checks the backup CronJobs a site's deploy applied with the
// platform: the ones of its role, the backup image pinned by digest at the
// nodes' address, credentials only as Secret references (no value of a
// known secret anywhere in their specs).
func checkCronJobs(t *testing.T, kc kubernetes.Interface, ns string, want []string, secrets []string) {
	t.Helper()
	cjs, err := kc.BatchV1().CronJobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, cj := range cjs.Items {
		for _, w := range want {
			if strings.HasSuffix(cj.Name, "-"+w) {
				found[w] = true
			}
		}
		for _, c := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
			if !strings.HasPrefix(c.Image, "localhost:5000/") || !strings.Contains(c.Image, "@sha256:") {
				t.Errorf("CronJob %s/%s container %s: image %s is not pinned at the node address", ns, cj.Name, c.Name, c.Image)
			}
		}
		spec, err := json.Marshal(cj)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(string(spec), s) {
				t.Errorf("CronJob %s/%s holds a secret value in its spec", ns, cj.Name)
			}
		}
	}
	for _, w := range want {
		if !found[w] {
			t.Errorf("namespace %s has no backup CronJob *-%s (has %d CronJobs)", ns, w, len(cjs.Items))
		}
	}
}
