package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/deploy"
	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// runCLI runs deploy-k8s with args and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	return cli.RunCaptured(context.Background(), app(), append([]string{"deploy-k8s"}, args...)...)
}

// commonArgs deploy the example tree with the push result push.
func commonArgs(k *deploytest.Kube, tree, push string) []string {
	return []string{"--kubeconfig", k.Kubeconfig, "--manifests", tree, "--push-result", push, "--region", "A",
		"--allow-image", "docker.io/redis", "--allow-image", "docker.io/caddy"}
}

// writeFile writes content to dir/name with mode and returns its path.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// cliExample gives a test the real control plane, its own copy of the
// example tree with a push result (writePush's, seed v1) and a branch with
// its namespace; common deploys them, digest is the openedx image's.
func cliExample(t *testing.T, name string, writePush func(*testing.T, string) (string, string)) (k *deploytest.Kube, branch, ns string, common []string, digest string) {
	t.Helper()
	k = deploytest.RequireKube(t)
	tree := deploytest.PlatformTree(t)
	push, digest := writePush(t, "v1")
	branch = k.Branch(t, name)
	ns, _ = deploy.NamespaceFor(branch, deploy.DefaultBranchPrefix, "")
	return k, branch, ns, commonArgs(k, tree, push), digest
}

func TestCLIExitCodes(t *testing.T) {
	k := deploytest.RequireKube(t)
	tree := deploytest.PlatformTree(t)
	push, dOpenedx := deploytest.WritePush(t, "v1")
	common := commonArgs(k, tree, push)

	code, stdout, stderr := runCLI(t, append([]string{"deploy", "--branch", "main"}, common...)...)
	if code != cli.ExitUsage || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, `branch "main"`) {
		t.Errorf("bad branch: exit %d, stdout %q, stderr %q; want exit 2, one line naming the branch", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "--branch-prefix") {
		t.Errorf("bad branch: stderr %q does not name the flag that changes the prefix", stderr)
	}

	code, stdout, _ = runCLI(t, "namespace", "--branch", "platform/Acme_EU")
	if code != 0 || stdout != "acme-eu\n" {
		t.Errorf("namespace: exit %d stdout %q, want acme-eu", code, stdout)
	}

	branch := k.Branch(t, "cli")
	out := t.TempDir()
	files := []string{"--result", filepath.Join(out, "deploy.json"), "--zuul-return", filepath.Join(out, "zuul.json")}
	code, stdout, stderr = runCLI(t, append(append([]string{"deploy", "--branch", branch, "--timeout", "60s"}, files...), common...)...)
	if code != 0 || !strings.HasPrefix(stdout, "namespace=") || !strings.Contains(stdout, "revision=1 changed=true") {
		t.Fatalf("deploy: exit %d stdout %q stderr %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "workloads ready") {
		t.Errorf("no rollout progress on stderr: %s", stderr)
	}
	checkOutputs(t, out, 1, dOpenedx)
	code, stdout, _ = runCLI(t, append([]string{"deploy", "--branch", branch}, common...)...)
	if code != 0 || !strings.Contains(stdout, "revision=1 changed=false") {
		t.Errorf("re-deploy: exit %d stdout %q, want no change", code, stdout)
	}
}

// checkOutputs checks the result file and zuul_return data in dir.
func checkOutputs(t *testing.T, dir string, revision int, digest string) {
	t.Helper()
	var res result.DeployResult
	if err := result.ReadFile(filepath.Join(dir, "deploy.json"), &res); err != nil {
		t.Fatal(err)
	}
	if res.Revision != revision || !strings.HasPrefix(res.Tool, "deploy-k8s ") {
		t.Errorf("result file: revision %d tool %q, want revision %d by deploy-k8s", res.Revision, res.Tool, revision)
	}
	zr, err := os.ReadFile(filepath.Join(dir, "zuul.json"))
	if err != nil || !strings.Contains(string(zr), `"namespace": "`+res.Namespace+`"`) || !strings.Contains(string(zr), digest) {
		t.Errorf("zuul_return file lacks namespace or digest: %s (%v)", zr, err)
	}
}

// TestCLIFailedRollout: a rollout that times out exits 1, and the result,
// zuul_return and summary still say what was applied and recorded.
func TestCLIFailedRollout(t *testing.T) {
	k := deploytest.RequireKube(t)
	tree := deploytest.PlatformTree(t)
	deploytest.NeverReady(t, tree, "mfe")
	push, dOpenedx := deploytest.WritePush(t, "v1")
	out := t.TempDir()
	args := append([]string{"deploy", "--branch", k.Branch(t, "clifail"), "--timeout", "25s",
		"--result", filepath.Join(out, "deploy.json"), "--zuul-return", filepath.Join(out, "zuul.json")}, commonArgs(k, tree, push)...)
	code, stdout, stderr := runCLI(t, args...)
	if code != cli.ExitFailed || !strings.Contains(stdout, "revision=1 changed=true") {
		t.Fatalf("never-ready deploy: exit %d stdout %q stderr %s; want exit 1 and the summary", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "Deployment.apps/mfe") || !strings.Contains(stderr, "revision 1 recorded as failed") {
		t.Errorf("stderr does not name the workload and the failed revision: %s", stderr)
	}
	checkOutputs(t, out, 1, dOpenedx)
}

func TestSecretsNeverPrinted(t *testing.T) {
	k := deploytest.RequireKube(t)
	tree := deploytest.PlatformTree(t)
	push, _ := deploytest.WritePush(t, "v1")
	const value1, value2 = "Sup3r-s3cret-db-password-1", "Sup3r-s3cret-db-password-2"
	secretDoc := "apiVersion: v1\nkind: Secret\nmetadata: {name: openedx-db}\nstringData: {MYSQL_PASSWORD: " + value1 + "}\n"
	writeFile(t, filepath.Join(tree, "k8s"), "secret.yml", secretDoc, 0o644)
	testenv.Edit(t, tree, "kustomization.yml", "- k8s/volumes.yml\n", "- k8s/volumes.yml\n- k8s/secret.yml\n")
	branch := k.Branch(t, "secret")
	resultFile := filepath.Join(t.TempDir(), "deploy.json")
	common := append([]string{"--branch", branch}, commonArgs(k, tree, push)...)

	var all strings.Builder
	code, stdout, stderr := runCLI(t, append([]string{"--debug", "deploy", "--timeout", "60s", "--result", resultFile}, common...)...)
	all.WriteString(stdout + stderr)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, stderr)
	}
	testenv.Edit(t, tree, "k8s/secret.yml", value1, value2)
	code, stdout, stderr = runCLI(t, append([]string{"--debug", "diff"}, common...)...)
	all.WriteString(stdout + stderr)
	if code != 0 || !strings.Contains(stdout, "~ Secret/openedx-db") {
		t.Errorf("diff: exit %d, stdout %s: want the Secret shown as changed", code, stdout)
	}
	// A failing deploy (bad region) with --debug prints error details.
	code, stdout, stderr = runCLI(t, append(append([]string{"--debug", "deploy"}, common...), "--region", "nowhere")...)
	all.WriteString(stdout + stderr)
	if code != cli.ExitUsage {
		t.Errorf("bad region: exit %d", code)
	}
	res, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	all.Write(res)
	for _, leak := range []string{value1, value2, "PRIVATE KEY"} {
		if strings.Contains(all.String(), leak) {
			t.Errorf("output or result file contains %q", leak)
		}
	}
	// Revision records hold manifests, so they are Secrets, not ConfigMaps.
	ns, _ := deploy.NamespaceFor(branch, deploy.DefaultBranchPrefix, "")
	rec, err := k.Core.CoreV1().Secrets(ns).Get(context.Background(), "slipway-rev-1", metav1.GetOptions{})
	if err != nil || rec.Type != "slipway.dev/revision" {
		t.Errorf("revision record: %v, type %q", err, rec.Type)
	}
}

// TestCLIPullAddress: the pinned address is the node's by default, the CI
// one with --pull-address ci (or its environment twin); a bad value exits 2
// naming the flag.
func TestCLIPullAddress(t *testing.T) {
	k, branch, ns, common, digest := cliExample(t, "clipull", deploytest.WritePushNode)
	args := append([]string{"deploy", "--branch", branch, "--no-wait"}, common...)

	code, _, stderr := runCLI(t, append(args, "--pull-address", "nodes")...)
	if code != cli.ExitUsage || !strings.Contains(stderr, `pull address "nodes"`) || !strings.Contains(stderr, "--pull-address") {
		t.Errorf("bad pull address: exit %d, stderr %q; want exit 2 naming the value and the flag", code, stderr)
	}
	lms := func() string {
		d, err := k.Core.AppsV1().Deployments(ns).Get(context.Background(), "lms", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	code, _, stderr = runCLI(t, args...)
	if want := "localhost:5000/overhangio/openedx@" + digest; code != 0 || lms() != want {
		t.Fatalf("default deploy: exit %d, lms image %s, want %s\n%s", code, lms(), want, stderr)
	}
	if !strings.Contains(stderr, "to=localhost:5000/overhangio/openedx@"+digest+" address=node") {
		t.Errorf("stderr does not say what was pinned to which address: %s", stderr)
	}
	t.Setenv("SLIPWAY_PULL_ADDRESS", "ci")
	code, stdout, stderr := runCLI(t, args...)
	if want := "registry-a.example:5000/overhangio/openedx@" + digest; code != 0 || lms() != want || !strings.Contains(stdout, "revision=2 changed=true") {
		t.Errorf("SLIPWAY_PULL_ADDRESS=ci: exit %d, stdout %q, lms image %s, want %s as revision 2\n%s", code, stdout, lms(), want, stderr)
	}
}

// TestCLIBadSiteFlags: every bad value of the site flags exits 2 with one
// line naming the value and the flag (or file and field), before anything
// is changed.
func TestCLIBadSiteFlags(t *testing.T) {
	k, branch, ns, common, _ := cliExample(t, "clibad", deploytest.WritePush)
	dir := t.TempDir()
	open := writeFile(t, dir, "open.yaml", "secrets: {a: {k: Sup3r-s3cret-open}}\n", 0o644)
	badKey := writeFile(t, dir, "badkey.yaml", "secrets:\n  a: {k: Sup3r-s3cret-badkey, 'x/y': v}\n", 0o600)
	deployArgs := append([]string{"deploy", "--branch", branch}, common...)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"scale-down glob", append(deployArgs, "--standby", "--standby-scale-down", "lms["), `standby scale-down selector "lms[": not a workload name glob (lms, *-worker) or LABEL=VALUE; see --standby-scale-down`},
		{"scale-down label", append(deployArgs, "--standby-scale-down", "app kind=web"), `standby scale-down selector "app kind=web": label key "app kind"`},
		{"secrets file readable", append(deployArgs, "--secrets-file", open), "secrets file " + open + ": mode 0644 lets group or others read it: chmod 600 " + open},
		{"secrets file bad key", append(deployArgs, "--secrets-file", badKey), badKey + `:2: secrets.a.x/y: "x/y" is not a Secret key`},
		{"secrets file missing", append(deployArgs, "--secrets-file", filepath.Join(dir, "nope.yaml")), "nope.yaml"},
		{"manifests missing", append(deployArgs, "--manifests", filepath.Join(dir, "nope")), "reading manifests"},
		{"set-mode", []string{"set-mode", "--branch", branch, "--kubeconfig", k.Kubeconfig, "--mode", "passive"}, `mode "passive": want active or standby; set --mode`},
		{"expect", []string{"status", "--branch", branch, "--kubeconfig", k.Kubeconfig, "--expect", "activ"}, `expected mode "activ": want active or standby; set --expect`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != cli.ExitUsage || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", code, stdout, stderr, tc.want)
			}
			if strings.Contains(stderr, "Sup3r-s3cret") {
				t.Errorf("stderr shows a secret value: %s", stderr)
			}
		})
	}
	if _, err := k.Core.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); err == nil {
		t.Errorf("a refused deploy created namespace %s", ns)
	}
}

// TestCLIStandbyAndStatus: a standby deploy with extra manifests and a
// secrets file, then status: exit 0 with its JSON when healthy for the
// expected mode, 1 with one line when not (or nothing is deployed).
func TestCLIStandbyAndStatus(t *testing.T) {
	k, branch, _, common, _ := cliExample(t, "clistandby", deploytest.WritePush)
	dir := t.TempDir()
	extra := writeFile(t, dir, "extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: backup-values}\ndata: {site: dr}\n", 0o644)
	secrets := writeFile(t, dir, "secrets.yaml", "secrets:\n  backup-s3: {AWS_SECRET_ACCESS_KEY: Sup3r-s3cret-cli-key}\n", 0o600)
	args := append([]string{"deploy", "--standby", "--branch", branch, "--manifests", extra, "--secrets-file", secrets, "--job", "lms-job", "--timeout", "90s"}, common...)
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 || !strings.Contains(stdout, "revision=1 changed=true") || !strings.HasSuffix(stdout, " mode=standby\n") {
		t.Fatalf("standby deploy: exit %d stdout %q stderr %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "created=20 ") {
		t.Errorf("summary %q: want the example's 18 objects, the extra ConfigMap and the Secret created", stdout)
	}
	if strings.Contains(stdout+stderr, "Sup3r-s3cret") {
		t.Errorf("output shows a secret value")
	}
	status := []string{"status", "--branch", branch, "--kubeconfig", k.Kubeconfig}
	code, stdout, stderr = runCLI(t, append(status, "--expect", "standby")...)
	var s deploy.SiteStatus
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || code != 0 || !s.Healthy || s.Mode != "standby" || s.Revision != 1 || len(s.Workloads) != 7 {
		t.Errorf("status --expect standby: exit %d, %+v (%v), stderr %s; want exit 0, healthy standby revision 1 with 7 workloads", code, s, err, stderr)
	}
	code, stdout, stderr = runCLI(t, append(status, "--expect", "active")...)
	if code != cli.ExitFailed || !strings.Contains(stdout, `"healthy": false`) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "mode is standby, expected active") {
		t.Errorf("status --expect active of a standby: exit %d, stdout %s, stderr %q; want exit 1, the JSON and one line", code, stdout, stderr)
	}
	// set-mode needs no manifests: the site serves from the live revision.
	code, stdout, stderr = runCLI(t, "set-mode", "--mode", "active", "--branch", branch, "--kubeconfig", k.Kubeconfig, "--timeout", "90s")
	if code != 0 || !strings.Contains(stdout, "revision=2 changed=true") || !strings.HasSuffix(stdout, " mode=active\n") {
		t.Fatalf("set-mode active: exit %d stdout %q stderr %s", code, stdout, stderr)
	}
	if code, stdout, stderr = runCLI(t, append(status, "--expect", "active")...); code != 0 {
		t.Errorf("status --expect active after set-mode active: exit %d %s %s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "status", "--branch", k.Branch(t, "clinever"), "--kubeconfig", k.Kubeconfig)
	if code != cli.ExitFailed || !strings.Contains(stderr, "is not deployed at this site") {
		t.Errorf("status of a branch never deployed: exit %d, stderr %q; want exit 1", code, stderr)
	}
}
