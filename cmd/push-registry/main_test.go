package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// runCLI runs push-registry in-process and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir()) // no ~/.docker/config.json from the machine
	for _, v := range []string{"REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "SLIPWAY_REGISTRY_SECRETS", "SLIPWAY_REGIONS", "SLIPWAY_PUSH_TARGETS"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	return cli.RunCaptured(context.Background(), app(), append([]string{"push-registry"}, args...)...)
}

// TestCLIBadInput: every kind of bad input exits 2 with one line naming the
// problem, and nothing reaches the registry.
func TestCLIBadInput(t *testing.T) {
	a := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A")
	img := pushtest.RandomImage(t, 1, 10_000)
	dir := pushtest.WriteLayout(t, img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	repo := pushtest.UniqueRepo(t)
	tmp := t.TempDir()
	badTargets := filepath.Join(tmp, "targets.yaml")
	os.WriteFile(badTargets, []byte("regions:\n  - name: a\n    registry: "+a+"\n    regsitry: x\n"), 0o644)
	notJSON := filepath.Join(tmp, "config.json")
	os.WriteFile(notJSON, []byte("{not json"), 0o644)
	ok := []string{"--source", "oci:" + dir, "--repository", repo, "--tag", "v1"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown region syntax", append([]string{"push", "--region", "a:" + a}, ok...), `--region "a:` + a + `": want name=host`},
		{"region with scheme", append([]string{"push", "--region", "a=http://" + a}, ok...), "without a scheme"},
		{"no region", append([]string{"push"}, ok...), "no regions"},
		{"bad reference", []string{"push", "--region", "a=" + a, "--source", "docker://" + a + "/Bad Name:v1"}, "not an image reference"},
		{"missing layout", []string{"push", "--region", "a=" + a, "--source", "oci:" + filepath.Join(tmp, "nope"), "--repository", repo}, "OCI layout " + filepath.Join(tmp, "nope")},
		{"unreadable auth file", append([]string{"push", "--region", "a=" + a, "--auth-file", filepath.Join(tmp, "missing.json")}, ok...), "auth file: open " + filepath.Join(tmp, "missing.json")},
		{"auth file not json", append([]string{"push", "--region", "a=" + a, "--auth-file", notJSON}, ok...), "not a docker config.json"},
		{"bad targets file", append([]string{"push", "--targets", badTargets}, ok...), badTargets + ":4: regions[0].regsitry: unknown field"},
		{"bad tag", []string{"push", "--region", "a=" + a, "--source", "oci:" + dir, "--repository", repo, "--tag", "v1:x"}, `--tag: "v1:x" is not a valid tag`},
		{"bad repository", []string{"push", "--region", "a=" + a, "--source", "oci:" + dir, "--repository", "Acme/App"}, `--repository: "Acme/App" is not a valid repository path`},
		{"two sources", append([]string{"push", "--region", "a=" + a, "--build-result", "x.json"}, ok...), "exclude each other"},
		{"missing build result", []string{"push", "--region", "a=" + a, "--build-result", filepath.Join(tmp, "build.json")}, "build result: reading result file"},
		{"promote from a tag", []string{"promote", "--region", "a=" + a, "--source", a + "/" + repo + ":gate"}, "not pinned by digest"},
		{"unknown flag", []string{"push", "--regoin", "a=" + a}, "flag provided but not defined"},
		{"verify without result", []string{"verify"}, "--result is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "push-registry: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last stderr line = %q, want push-registry: ...%s", last, tt.want)
			}
			if tt.name != "unknown flag" && len(lines) != 1 {
				t.Errorf("stderr has %d lines, want 1:\n%s", len(lines), stderr)
			}
		})
	}
	if got := pushtest.TagDigest(t, a, repo, "v1"); got != "" {
		t.Errorf("bad input pushed a tag: %s", got)
	}
	resp, err := http.Head("http://" + a + "/v2/" + repo + "/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("bad input pushed a blob: HEAD = %s", resp.Status)
	}
}

// TestCLISecrets pushes through a registry that requires a login (an auth
// proxy in front of the real registry), with the password from each source,
// and checks the password appears nowhere: logs (debug), errors, result file,
// zuul_return data, stdout.
func TestCLISecrets(t *testing.T) {
	a := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A")
	const user, password = "ci-bot", "pw-Zq81-very-secret"
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	fp := pushtest.NewFaultProxy(t, a)
	fp.Set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="slipway-test"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return true
		}
		return false
	})
	img := pushtest.RandomImage(t, 1, 20_000)
	dir := pushtest.WriteLayout(t, img)
	tmp := t.TempDir()
	secrets := filepath.Join(tmp, "secrets.yaml")
	os.WriteFile(secrets, []byte("registry_credentials:\n  a:\n    username: "+user+"\n    password: "+password+"\n"), 0o600)
	authFile := filepath.Join(tmp, "config.json")
	os.WriteFile(authFile, []byte(`{"auths":{"`+fp.Host()+`":{"auth":"`+base64.StdEncoding.EncodeToString([]byte(user+":"+password))+`"}}}`), 0o600)
	wrongAuth := filepath.Join(tmp, "wrong.json")
	os.WriteFile(wrongAuth, []byte(`{"auths":{"`+fp.Host()+`":{"auth":"`+base64.StdEncoding.EncodeToString([]byte(user+":"+password+"-wrong"))+`"}}}`), 0o600)

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
	}{
		{name: "secrets file", args: []string{"--secrets-file", secrets}},
		{name: "auth file", args: []string{"--auth-file", authFile}},
		{name: "environment", env: map[string]string{"SLIPWAY_REGISTRY_A_USERNAME": user, "SLIPWAY_REGISTRY_A_PASSWORD": password}},
		{name: "wrong password", args: []string{"--auth-file", wrongAuth}, wantCode: 1},
		{name: "no credentials", wantCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := pushtest.UniqueRepo(t)
			out := t.TempDir()
			args := append([]string{"--debug", "--log-format", "json", "push", "--region", "a=" + fp.Host(), "--source", "oci:" + dir, "--repository", repo, "--tag", "v1",
				"--result", filepath.Join(out, "push.json"), "--zuul-return", filepath.Join(out, "zuul.json")}, tt.args...)
			code, stdout, stderr := func() (int, string, string) {
				// runCLI clears the environment first; set ours after.
				t.Setenv("HOME", t.TempDir())
				for k, v := range tt.env {
					t.Setenv(k, v)
				}
				return cli.RunCaptured(context.Background(), app(), append([]string{"push-registry"}, args...)...)
			}()
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if tt.wantCode == 0 && !strings.Contains(stdout, fp.Host()+"/"+repo+"@"+pushtest.Digest(t, img)) {
				t.Errorf("stdout = %q", stdout)
			}
			if tt.wantCode != 0 {
				pushtest.MustContain(t, stderr, "region a", "401")
			}
			files, _ := filepath.Glob(filepath.Join(out, "*"))
			texts := map[string]string{"stdout": stdout, "stderr": stderr}
			for _, f := range files {
				b, _ := os.ReadFile(f)
				texts[f] = string(b)
			}
			for where, s := range texts {
				for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))} {
					if strings.Contains(s, secret) {
						t.Errorf("%s contains the password", where)
					}
				}
			}
		})
	}
}

// TestCLIOutputs pushes to both regions and checks what the command hands
// on: one REPOSITORY@DIGEST line per region on stdout, the result file, the
// zuul_return data; then verify reads that result back.
func TestCLIOutputs(t *testing.T) {
	a, b := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B")
	img := pushtest.RandomImage(t, 1, 20_000)
	digest := pushtest.Digest(t, img)
	repo := pushtest.UniqueRepo(t)
	out := t.TempDir()
	resultFile, zuulFile := filepath.Join(out, "push.json"), filepath.Join(out, "zuul.json")
	code, stdout, stderr := runCLI(t, "push", "--region", "a="+a, "--region", "b="+b, "--source", "oci:"+pushtest.WriteLayout(t, img),
		"--repository", repo, "--tag", "v1", "--result", resultFile, "--zuul-return", zuulFile)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	want := a + "/" + repo + "@" + digest + "\n" + b + "/" + repo + "@" + digest + "\n"
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	var res result.PushResult
	if err := result.ReadFile(resultFile, &res); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Tool, "push-registry ") || len(res.Images) != 1 || res.Images[0].Digest != digest {
		t.Errorf("result: tool %q, images %+v", res.Tool, res.Images)
	}
	var zr struct {
		Zuul struct{ Artifacts []struct{ Name, URL string } }
	}
	data, err := os.ReadFile(zuulFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &zr); err != nil {
		t.Fatal(err)
	}
	if len(zr.Zuul.Artifacts) != 2 || zr.Zuul.Artifacts[0].URL != "docker://"+a+"/"+repo+"@"+digest {
		t.Errorf("zuul_return artifacts = %+v", zr.Zuul.Artifacts)
	}
	code, stdout, stderr = runCLI(t, "verify", "--result", resultFile)
	if code != 0 || stdout != "verified\n" {
		t.Errorf("verify: exit code %d, stdout %q; stderr:\n%s", code, stdout, stderr)
	}
}
