package magnum

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/testenv"
)

// TestKubeconfigAuthenticatesAgainstRealAPIServer: the emulator runs with
// the test kube-apiserver as every cluster's api_address and its CA as the
// certificate authority (hack/servers/openstack.sh after kube.sh), so the
// kubeconfig magnum-cluster writes must log in to that real API server as
// admin in system:masters.
func TestKubeconfigAuthenticatesAgainstRealAPIServer(t *testing.T) {
	kube := testenv.Require(t, "SLIPWAY_TEST_KUBE_SERVER", "SLIPWAY_TEST_KUBE_CA_CERT")
	e := newEnv(t)
	kc := filepath.Join(e.Dir, "kubeconfig")
	o := e.opts(testSpec())
	o.Kubeconfig = kc
	if _, err := ClusterEnsure(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatalf("client-go cannot load the kubeconfig: %v", err)
	}
	cl := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	if cl.Server != kube[0] {
		t.Fatalf("kubeconfig server %s, want the test API server %s (was the emulator started after kube.sh?)", cl.Server, kube[0])
	}
	wantCA, err := os.ReadFile(kube[1])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(cl.CertificateAuthorityData), bytes.TrimSpace(wantCA)) {
		t.Fatal("the kubeconfig's CA is not the test API server's CA")
	}
	rest, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the API server rejected the kubeconfig: %v", err)
	}
	u := review.Status.UserInfo
	if u.Username != "admin" || !slices.Contains(u.Groups, "system:masters") {
		t.Fatalf("authenticated as %s %v, want admin in system:masters", u.Username, u.Groups)
	}
	if _, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("listing namespaces as admin: %v", err)
	}
	// A second run keeps the kubeconfig: it is current.
	before, _ := os.ReadFile(kc)
	ko := Options{Auth: e.Auth, ClusterName: "c", Kubeconfig: kc}
	got, err := Kubeconfig(ctx, ko)
	if err != nil {
		t.Fatal(err)
	}
	if got.Written {
		t.Errorf("second kubeconfig run: %+v", got)
	}
	after, _ := os.ReadFile(kc)
	if !bytes.Equal(before, after) {
		t.Error("a current kubeconfig was rewritten")
	}
	// A kubeconfig for another server is replaced.
	if err := os.WriteFile(kc, bytes.ReplaceAll(before, []byte(kube[0]), []byte("https://elsewhere:6443")), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Kubeconfig(ctx, ko); err != nil || !got.Written {
		t.Errorf("stale kubeconfig was not replaced: %v %+v", err, got)
	}
}
