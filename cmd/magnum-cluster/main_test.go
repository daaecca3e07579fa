package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum/magnumtest"
	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/result"
)

var testSpec = magnumtest.Spec

// runCLI runs magnum-cluster in-process with args, OpenStack credentials in
// OS_* variables as an operator would set them, and returns the exit code
// and the two streams.
func runCLI(e *magnumtest.Env, args ...string) (int, string, string) {
	e.T.Helper()
	e.SetOSEnv()
	return cli.RunCaptured(context.Background(), app(), append([]string{"magnum-cluster"}, args...)...)
}

// sameResult decodes the result a command printed and the one it wrote
// to the file res, fails t unless they are the same, and returns the
// file's.
func sameResult[T any, P interface {
	*T
	result.Document
}](t *testing.T, stdout, res string) T {
	t.Helper()
	var printed, file T
	if err := result.Decode(strings.NewReader(stdout), P(&printed)); err != nil {
		t.Fatalf("stdout is not a %T: %v\n%s", printed, err, stdout)
	}
	if err := result.ReadFile(res, P(&file)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(printed, file); diff != "" {
		t.Errorf("stdout and result file differ (-stdout +file):\n%s", diff)
	}
	return file
}

func TestCLIBadSpecsExitTwo(t *testing.T) {
	e := magnumtest.New(t)
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"unknown field", testSpec("  keypair: kp\n", "  keypair: kp\n  flavour: m1.small\n"), "bad.yaml:5: template.flavour: unknown field"},
		{"wrong type", testSpec("node_count: 2", "node_count: two"), `bad.yaml:12: cluster.node_count: must be a whole number, not "two"`},
		{"missing image", testSpec("  image: fedora-coreos-34\n", ""), "bad.yaml:1: template.image: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := e.WriteSpec("bad.yaml", tc.spec)
			code, stdout, stderr := runCLI(e, "cluster", "ensure", "--spec", path)
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
	code, stdout, _ := runCLI(e, "cluster", "diff", "--spec", e.WriteSpec("good.yaml", testSpec()))
	if code != 0 || !strings.Contains(stdout, "create cluster c") {
		t.Errorf("after the bad runs: %d %s", code, stdout)
	}
	if code, _, stderr := runCLI(e, "cluster", "ensure", "--spec", filepath.Join(e.Dir, "missing.yaml")); code != cli.ExitUsage || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing spec file: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(e, "cluster", "ensure", "--spec", e.WriteSpec("s.yaml", testSpec()), "--log-format", "xml"); code != cli.ExitUsage {
		t.Errorf("bad --log-format: %d %s", code, stderr)
	}
}

// TestSecretsStayOut runs successful and failing commands with debug logs in
// both formats and looks for the password, the token and the private key
// everywhere the tool writes.
func TestSecretsStayOut(t *testing.T) {
	e := magnumtest.New(t)
	spec := e.WriteSpec("spec.yaml", testSpec())
	res, zr, kc := filepath.Join(e.Dir, "res.json"), filepath.Join(e.Dir, "zr.json"), filepath.Join(e.Dir, "kubeconfig")
	var outputs []string
	run := func(wantCode int, args ...string) {
		t.Helper()
		code, stdout, stderr := runCLI(e, args...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d; stderr:\n%s", args, code, wantCode, stderr)
		}
		outputs = append(outputs, stdout, stderr)
	}
	run(0, "--debug", "--log-format", "json", "cluster", "ensure", "--spec", spec, "--poll-interval", "100ms", "--result", res, "--zuul-return", zr, "--kubeconfig", kc)
	run(0, "--debug", "cluster", "show", "--spec", spec)
	run(0, "--debug", "kubeconfig", "--spec", spec, "--output", kc)
	// Failures: a failed create, and rejected credentials.
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultCreateFailed, Cluster: "d", StatusReason: "boom"})
	run(1, "--debug", "cluster", "ensure", "--spec", e.WriteSpec("d.yaml", testSpec("name: c", "name: d")), "--poll-interval", "100ms")
	good := e.Password
	e.Password = "wrong-" + good
	run(1, "--debug", "--log-format", "json", "cluster", "show", "--spec", spec)
	e.Password = good
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

// TestCLIOutputs: what each command prints and writes, and the errors that
// name flags.
func TestCLIOutputs(t *testing.T) {
	e := magnumtest.New(t)
	spec := e.WriteSpec("spec.yaml", testSpec())
	res, zr, kc := filepath.Join(e.Dir, "res.json"), filepath.Join(e.Dir, "zr.json"), filepath.Join(e.Dir, "kubeconfig")
	run := func(wantCode int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(e, args...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d; stderr:\n%s", args, code, wantCode, stderr)
		}
		if wantCode != 0 {
			return stderr
		}
		return stdout
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no spec", []string{"cluster", "ensure"}, "magnum-cluster: a spec file is required: pass --spec FILE\n"},
		{"no name", []string{"cluster", "show"}, "magnum-cluster: name the cluster: --spec FILE or --name NAME\n"},
		{"no output", []string{"kubeconfig", "--name", "c"}, "magnum-cluster: --output (the kubeconfig path) or --output-dir (a kubeconfig per region) is required\n"},
		{"name and spec disagree", []string{"cluster", "show", "--spec", spec, "--name", "d"}, "magnum-cluster: --name d and the spec's cluster.name c disagree: give one of them\n"},
		{"arguments", []string{"cluster", "show", "c"}, "magnum-cluster: show takes no arguments, got \"c\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(cli.ExitUsage, tc.args...); got != tc.want {
				t.Errorf("stderr %q, want %q", got, tc.want)
			}
		})
	}

	stdout := run(0, "cluster", "ensure", "--spec", spec, "--poll-interval", "100ms", "--result", res, "--zuul-return", zr)
	file := sameResult[result.ClusterResult](t, stdout, res)
	if !strings.HasPrefix(file.Tool, "magnum-cluster ") {
		t.Errorf("result tool %q", file.Tool)
	}
	data, err := os.ReadFile(zr)
	if err != nil || !strings.Contains(string(data), `"uuid": "`+file.Cluster.UUID+`"`) {
		t.Errorf("zuul_return file: %v %s", err, data)
	}
	if again := run(0, "cluster", "ensure", "--spec", spec, "--poll-interval", "100ms"); !strings.Contains(again, `"changes": []`) {
		t.Errorf("a rerun does not print \"changes\": [] (the playbook's changed_when reads it):\n%s", again)
	}
	if out := run(0, "cluster", "diff", "--spec", spec); out != "cluster c (CREATE_COMPLETE) matches the spec: no changes\n" {
		t.Errorf("cluster diff printed %q", out)
	}
	if out := run(0, "kubeconfig", "--spec", spec, "-o", kc); !strings.Contains(out, `"written": true`) {
		t.Errorf("kubeconfig printed %s", out)
	}
	// A spec without regions: --output-dir names the file after OS_REGION_NAME.
	if out := run(0, "kubeconfig", "--spec", spec, "--output-dir", e.Dir); !strings.Contains(out, `"kubeconfig": "`+filepath.Join(e.Dir, "RegionOne.kubeconfig")+`"`) {
		t.Errorf("kubeconfig --output-dir printed %s", out)
	}
	if fi, err := os.Stat(filepath.Join(e.Dir, "RegionOne.kubeconfig")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig --output-dir: %v %v", err, fi)
	}
	var deleted map[string]any
	out := run(0, "cluster", "delete", "--name", "c", "--poll-interval", "100ms")
	if err := json.Unmarshal([]byte(out), &deleted); err != nil || !cmp.Equal(deleted, map[string]any{"cluster": "c", "deleted": true, "uuid": file.Cluster.UUID}) {
		t.Errorf("cluster delete printed %s", out)
	}
	if out := run(0, "cluster", "delete", "--name", "c"); out != "{\n  \"cluster\": \"c\",\n  \"deleted\": false\n}\n" {
		t.Errorf("a second cluster delete printed %q", out)
	}
	if out := run(0, "template", "delete", "--spec", spec); !strings.Contains(out, `"deleted": [`+"\n"+`    "t-`) {
		t.Errorf("template delete printed %s", out)
	}
}

func TestCLIWaitTimeoutNamesTheFlag(t *testing.T) {
	e := magnumtest.New(t)
	e.Inject(openstackemu.Fault{Kind: openstackemu.FaultStuck, Cluster: "c"})
	code, stdout, stderr := runCLI(e, "cluster", "ensure", "--spec", e.WriteSpec("spec.yaml", testSpec()), "--wait-timeout", "1s", "--poll-interval", "100ms")
	if code != cli.ExitFailed || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "still CREATE_IN_PROGRESS") || !strings.HasSuffix(stderr, "raise the wait timeout (--wait-timeout)\n") {
		t.Errorf("stderr does not name the flag to raise:\n%s", stderr)
	}
	e.AssertFaultsFired()
}

// TestCLIRegions: a spec with regions through the command line: bad region
// flags and region errors in the spec are one line and exit 2; ensure
// writes a ClustersResult, zuul_return data per region and a kubeconfig
// per region; --region limits every command to one region.
func TestCLIRegions(t *testing.T) {
	e := magnumtest.New(t)
	spec := e.WriteSpec("regions.yaml", magnumtest.RegionsSpec())
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown region", []string{"cluster", "ensure", "--spec", spec, "--region", "RegionThree"},
			"magnum-cluster: --region RegionThree: RegionThree is not one of the spec's regions (RegionOne, RegionTwo)\n"},
		{"region of a spec without regions", []string{"cluster", "ensure", "--spec", e.WriteSpec("plain.yaml", testSpec()), "--region", "RegionTwo"},
			"magnum-cluster: --region RegionTwo: the spec names no regions (regions:); a spec without regions works in the region of OS_REGION_NAME\n"},
		{"bad region cloud", []string{"cluster", "diff", "--spec", spec, "--region-cloud", "RegionTwo"},
			"magnum-cluster: --region-cloud \"RegionTwo\": want REGION=CLOUD (a region of the spec and a clouds.yaml entry)\n"},
		{"one kubeconfig for two regions", []string{"cluster", "ensure", "--spec", spec, "--kubeconfig", "k"},
			"magnum-cluster: --kubeconfig: the spec names 2 regions (RegionOne, RegionTwo): write one kubeconfig per region with --kubeconfig-dir DIR (DIR/<region>.kubeconfig), or choose one with --region\n"},
		{"one output for two regions", []string{"kubeconfig", "--spec", spec, "--output", "k"},
			"magnum-cluster: --output: the spec names 2 regions (RegionOne, RegionTwo): write one kubeconfig per region with --output-dir DIR (DIR/<region>.kubeconfig), or choose one with --region\n"},
		{"region error in the spec", []string{"cluster", "ensure", "--spec", e.WriteSpec("bad.yaml", magnumtest.RegionsSpec("      node_count: 1", "      node_count: one"))},
			"magnum-cluster: " + filepath.Join(e.Dir, "bad.yaml") + ":22: regions[1].cluster.node_count: must be a whole number, not \"one\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(e, tc.args...)
			if code != cli.ExitUsage || stderr != tc.want || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr\n got %q\nwant %q", code, stdout, stderr, tc.want)
			}
		})
	}

	res, zr, kube := filepath.Join(e.Dir, "res.json"), filepath.Join(e.Dir, "zr.json"), filepath.Join(e.Dir, "kube")
	if err := os.Mkdir(kube, 0o700); err != nil {
		t.Fatal(err)
	}
	// OS_REGION_NAME=RegionOne (SetOSEnv) does not limit a spec with regions.
	code, stdout, stderr := runCLI(e, "cluster", "ensure", "--spec", spec, "--poll-interval", "100ms", "--result", res, "--zuul-return", zr, "--kubeconfig-dir", kube)
	if code != 0 {
		t.Fatalf("ensure: exit %d\n%s", code, stderr)
	}
	file := sameResult[result.ClustersResult](t, stdout, res)
	for _, region := range []string{"RegionOne", "RegionTwo"} {
		r, err := file.In(region)
		if err != nil || r.Cluster.Status != "CREATE_COMPLETE" || r.Kubeconfig != filepath.Join(kube, region+".kubeconfig") || r.Kind != "ClusterResult" {
			t.Errorf("%s in the result: %v %+v", region, err, r)
		}
		if !strings.Contains(stderr, "region="+region) {
			t.Errorf("the log does not name region %s:\n%s", region, stderr)
		}
	}
	var ret struct {
		Zuul struct {
			Artifacts []struct{ Name string } `json:"artifacts"`
		} `json:"zuul"`
		Clusters map[string]map[string]any `json:"slipway_clusters"`
		Primary  map[string]any            `json:"slipway_cluster"`
	}
	data, err := os.ReadFile(zr)
	if err != nil || json.Unmarshal(data, &ret) != nil {
		t.Fatalf("zuul_return file: %v %s", err, data)
	}
	two, _ := file.In("RegionTwo")
	if ret.Clusters["RegionTwo"]["uuid"] != two.Cluster.UUID || ret.Clusters["RegionTwo"]["kubeconfig"] != two.Kubeconfig ||
		ret.Primary["region"] != "RegionOne" || len(ret.Zuul.Artifacts) != 2 || ret.Zuul.Artifacts[1].Name != "magnum cluster c in RegionTwo" {
		t.Errorf("zuul_return data:\n%s", data)
	}
	if strings.Contains(string(data), "client-key-data") {
		t.Error("the zuul_return data holds a kubeconfig")
	}
	if code, out, stderr := runCLI(e, "cluster", "ensure", "--spec", spec, "--poll-interval", "100ms", "--kubeconfig-dir", kube); code != 0 || !strings.Contains(out, "\n  \"changes\": []\n}") {
		t.Errorf("a rerun does not end with the top-level \"changes\": [] (exit %d):\n%s\n%s", code, out, stderr)
	}
	if code, out, _ := runCLI(e, "cluster", "diff", "--spec", spec, "--region", "RegionTwo"); code != 0 || out != "RegionTwo: cluster c (CREATE_COMPLETE) matches the spec: no changes\n" {
		t.Errorf("diff --region RegionTwo: %d %q", code, out)
	}
	kc := filepath.Join(e.Dir, "b.kubeconfig")
	if code, out, stderr := runCLI(e, "kubeconfig", "--spec", spec, "--region", "RegionTwo", "-o", kc); code != 0 || !strings.Contains(out, `"region": "RegionTwo"`) || !strings.Contains(out, `"written": true`) {
		t.Errorf("kubeconfig --region RegionTwo: %d %s %s", code, out, stderr)
	}
	if code, out, _ := runCLI(e, "cluster", "show", "--spec", spec, "--region", "RegionOne"); code != 0 || strings.Contains(out, "RegionTwo") || !strings.Contains(out, `"kind": "ClustersResult"`) {
		t.Errorf("show --region RegionOne: %d %s", code, out)
	}
	// Delete region B only; region A stays.
	if code, out, stderr := runCLI(e, "cluster", "delete", "--spec", spec, "--region", "RegionTwo", "--poll-interval", "100ms"); code != 0 || !strings.Contains(out, `"deleted": true`) {
		t.Fatalf("delete --region RegionTwo: %d %s %s", code, out, stderr)
	}
	code, out, stderr := runCLI(e, "cluster", "show", "--spec", spec)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != cli.ExitFailed || out != "" || lines[len(lines)-1] != "magnum-cluster: region RegionTwo: cluster c does not exist in region RegionTwo; region RegionOne done: rerun the same command to finish region RegionTwo" {
		t.Errorf("show after deleting region B: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
