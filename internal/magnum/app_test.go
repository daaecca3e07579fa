package magnum

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/openstackemu"
)

// runCLI runs magnum-cluster in-process with args, OpenStack credentials in
// OS_* variables as an operator would set them, and returns the exit code
// and the two streams.
func (e *env) runCLI(args ...string) (int, string, string) {
	e.t.Helper()
	e.t.Setenv("OS_AUTH_URL", e.auth.AuthURL)
	e.t.Setenv("OS_USERNAME", e.auth.Username)
	e.t.Setenv("OS_PASSWORD", e.password)
	e.t.Setenv("OS_USER_DOMAIN_NAME", "Default")
	e.t.Setenv("OS_PROJECT_NAME", e.project)
	e.t.Setenv("OS_PROJECT_DOMAIN_NAME", "Default")
	e.t.Setenv("OS_REGION_NAME", "RegionOne")
	app := App()
	var stdout, stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stdout, &stderr
	code := cli.Run(context.Background(), app, append([]string{"magnum-cluster"}, args...))
	return code, stdout.String(), stderr.String()
}

func (e *env) writeSpec(name, text string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func TestCLIBadSpecsExitTwo(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"unknown field", testSpec("  keypair: kp\n", "  keypair: kp\n  flavour: m1.small\n"), "bad.yaml:5: template.flavour: unknown field"},
		{"wrong type", testSpec("node_count: 2", "node_count: two"), `bad.yaml:12: cluster.node_count: must be a whole number, not "two"`},
		{"missing image", testSpec("  image: fedora-coreos-34\n", ""), "bad.yaml:1: template.image: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := e.writeSpec("bad.yaml", tc.spec)
			code, stdout, stderr := e.runCLI("cluster", "ensure", "--spec", path)
			if code != cli.ExitUsage {
				t.Errorf("exit code %d, want 2; stderr %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr should be one line naming %q, got:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
		})
	}
	// Nothing was created by the bad runs.
	code, stdout, _ := e.runCLI("cluster", "diff", "--spec", e.writeSpec("good.yaml", testSpec()))
	if code != 0 || !strings.Contains(stdout, "create cluster c") {
		t.Errorf("after the bad runs: %d %s", code, stdout)
	}
	if code, _, stderr := e.runCLI("cluster", "ensure", "--spec", filepath.Join(e.dir, "missing.yaml")); code != cli.ExitUsage || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing spec file: %d %s", code, stderr)
	}
	if code, _, stderr := e.runCLI("cluster", "ensure", "--spec", e.writeSpec("s.yaml", testSpec()), "--log-format", "xml"); code != cli.ExitUsage {
		t.Errorf("bad --log-format: %d %s", code, stderr)
	}
}

// TestSecretsStayOut runs successful and failing commands with debug logs in
// both formats and looks for the password, the token and the private key
// everywhere the tool writes.
func TestSecretsStayOut(t *testing.T) {
	e := newEnv(t)
	spec := e.writeSpec("spec.yaml", testSpec())
	res, zr, kc := filepath.Join(e.dir, "res.json"), filepath.Join(e.dir, "zr.json"), filepath.Join(e.dir, "kubeconfig")
	var outputs []string
	run := func(wantCode int, args ...string) {
		t.Helper()
		code, stdout, stderr := e.runCLI(args...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d; stderr:\n%s", args, code, wantCode, stderr)
		}
		outputs = append(outputs, stdout, stderr)
	}
	run(0, "--debug", "--log-format", "json", "cluster", "ensure", "--spec", spec, "--poll-interval", "100ms", "--result", res, "--zuul-return", zr, "--kubeconfig", kc)
	run(0, "--debug", "cluster", "show", "--spec", spec)
	run(0, "--debug", "kubeconfig", "--spec", spec, "--output", kc)
	// Failures: a failed create, and rejected credentials.
	e.inject(openstackemu.Fault{Kind: openstackemu.FaultCreateFailed, Cluster: "d", StatusReason: "boom"})
	run(1, "--debug", "cluster", "ensure", "--spec", e.writeSpec("d.yaml", testSpec("name: c", "name: d")), "--poll-interval", "100ms")
	good := e.password
	e.password = "wrong-" + good
	run(1, "--debug", "--log-format", "json", "cluster", "show", "--spec", spec)
	e.password = good
	for _, f := range []string{res, zr} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(data))
	}
	kcData, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(kc); fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	var key string
	for _, line := range strings.Split(string(kcData), "\n") {
		if strings.Contains(line, "client-key-data:") {
			key = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "client-key-data:"))
		}
	}
	if len(key) < 100 {
		t.Fatalf("no client key in the kubeconfig:\n%s", kcData)
	}
	secrets := map[string]string{"password": good, "wrong password": "wrong-" + good, "private key": key[20:80]}
	all := strings.Join(outputs, "\n")
	for what, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("the %s appears in the output", what)
		}
	}
	if strings.Contains(all, "gAAAAA") {
		t.Error("a Keystone token appears in the output")
	}
	if !strings.Contains(all, "boom") || !strings.Contains(all, "rejected (401)") {
		t.Error("the failing runs did not report their failures (the test would prove nothing)")
	}
}
