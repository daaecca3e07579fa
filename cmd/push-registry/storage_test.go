package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// storageEnv is the test env's Swift behind Keystone, written as a targets
// file of two storage-backed regions (as the playbooks write it) and a
// secrets file holding the Keystone password.
type storageEnv struct {
	targets, secrets, password, stateDir string
	nodes                                []string // a registry on each region's container
}

func newStorageEnv(t *testing.T) storageEnv {
	v := testenv.Require(t, "SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL", "SLIPWAY_TEST_SWIFT_KEYSTONE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN", "SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B",
		"SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_B_NODE")
	authURL, user, password, domain, project := v[0], v[1], v[2], v[3], v[4]
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("regions:\n")
	for _, r := range []struct{ name, region, container string }{{"a", v[5], v[6]}, {"b", v[7], v[8]}} {
		b.WriteString("  - name: " + r.name + "\n    swift:\n      authurl: " + authURL + "\n      authversion: 3\n      region: " + r.region +
			"\n      container: " + r.container + "\n      username: " + user + "\n      domain: " + domain + "\n      tenant: " + project +
			"\n      tenantdomain: " + domain + "\n      chunksize: 1048576\n      insecureskipverify: true\n")
	}
	e := storageEnv{targets: filepath.Join(dir, "targets.yaml"), secrets: filepath.Join(dir, "secrets.yaml"), password: password,
		stateDir: filepath.Join(dir, "state"), nodes: []string{v[9], v[10]}}
	os.WriteFile(e.targets, []byte(b.String()), 0o644)
	os.WriteFile(e.secrets, []byte("swift_credentials:\n  a: {password: "+password+"}\n  b: {password: "+password+"}\n"), 0o600)
	return e
}

// trustee writes targets and secrets for Magnum's trustee: its user and
// domain in the targets, its password and the trust in the secrets, as
// Magnum writes a node registry's config.
func (e storageEnv) trustee(t *testing.T) (targets, secrets string, secret []string) {
	v := testenv.Require(t, "SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_DOMAIN_ID", "SLIPWAY_TEST_SWIFT_KEYSTONE_TRUST_ID")
	raw, err := os.ReadFile(e.targets)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		switch k, _, _ := strings.Cut(strings.TrimSpace(line), ":"); k {
		case "username":
			b.WriteString("      username: " + v[0] + "\n      domainid: " + v[2] + "\n")
		case "domain", "tenant", "tenantdomain":
		default:
			b.WriteString(line)
		}
	}
	dir := t.TempDir()
	targets, secrets = filepath.Join(dir, "trustee.yaml"), filepath.Join(dir, "trustee-secrets.yaml")
	os.WriteFile(targets, []byte(b.String()), 0o644)
	os.WriteFile(secrets, []byte("swift_credentials:\n  a: {password: "+v[1]+", trustid: "+v[3]+"}\n  b: {password: "+v[1]+", trustid: "+v[3]+"}\n"), 0o600)
	return targets, secrets, []string{v[1], v[3]}
}

func (e storageEnv) args(verb string, extra ...string) []string {
	return append([]string{verb, "--targets", e.targets, "--secrets-file", e.secrets, "--state-dir", e.stateDir,
		"--registry-binary", "/usr/bin/docker-registry"}, extra...)
}

// watchChild records, while a run goes, the command line, environment and
// state file modes of every registry push-registry starts under state.
type watchChild struct {
	mu    sync.Mutex
	seen  map[string]string // what → content
	stop  chan struct{}
	done  chan struct{}
	state string
}

func watchChildren(state string) *watchChild {
	w := &watchChild{seen: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{}), state: state}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			pids, _ := filepath.Glob(filepath.Join(state, "reg-*", "pid"))
			for _, p := range pids {
				raw, _ := os.ReadFile(p)
				pid := strings.TrimSpace(string(raw))
				cmdline, err1 := os.ReadFile("/proc/" + pid + "/cmdline")
				environ, err2 := os.ReadFile("/proc/" + pid + "/environ")
				w.mu.Lock()
				if err1 == nil && err2 == nil {
					w.seen["cmdline "+pid] = string(cmdline)
					w.seen["environ "+pid] = string(environ)
				}
				for _, f := range []string{filepath.Dir(p), filepath.Join(filepath.Dir(p), "config.yml")} {
					if fi, err := os.Stat(f); err == nil {
						w.seen["mode "+f] = fi.Mode().Perm().String()
					}
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *watchChild) finish() map[string]string {
	close(w.stop)
	<-w.done
	return w.seen
}

// TestCLIStorageSecrets pushes to storage-backed regions with the Keystone
// password from the secrets file, then as Magnum's trustee with the trust
// (user and domain in the targets, password and trust ID secret): none shows
// in the child registry's command line or environment, in logs (debug,
// JSON), stderr, stdout, the result or zuul_return; the child's directory
// and config are private.
func TestCLIStorageSecrets(t *testing.T) {
	e := newStorageEnv(t)
	img := pushtest.RandomImage(t, 1, 20_000)
	dir := pushtest.WriteLayout(t, img)
	trusteeTargets, trusteeSecrets, trustSecrets := e.trustee(t)
	for _, tc := range []struct {
		name             string
		targets, secrets string
		secret           []string
	}{
		{"password", e.targets, e.secrets, []string{e.password}},
		{"Magnum's trustee and trust", trusteeTargets, trusteeSecrets, trustSecrets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			repo := pushtest.UniqueRepo(t)
			w := watchChildren(e.stateDir)
			args := append([]string{"--debug", "--log-format", "json"}, e.args("push", "--targets", tc.targets, "--secrets-file", tc.secrets, "--source", "oci:"+dir, "--repository", repo, "--tag", "v1",
				"--result", filepath.Join(out, "push.json"), "--zuul-return", filepath.Join(out, "zuul.json"))...)
			code, stdout, stderr := runCLI(t, args...)
			seen := w.finish()
			if code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			if len(seen) == 0 {
				t.Fatal("no child registry was seen")
			}
			texts := map[string]string{"stdout": stdout, "stderr": stderr}
			for k, v := range seen {
				if strings.HasPrefix(k, "mode ") {
					want := "-rw-------"
					if !strings.HasSuffix(k, "config.yml") {
						want = "-rwx------"
					}
					if v != want {
						t.Errorf("%s = %s, want %s", k, v, want)
					}
					continue
				}
				texts[k] = v
			}
			files, _ := filepath.Glob(filepath.Join(out, "*"))
			for _, f := range files {
				b, _ := os.ReadFile(f)
				texts[f] = string(b)
			}
			for where, s := range texts {
				for _, secret := range tc.secret {
					if strings.Contains(s, secret) {
						t.Errorf("%s contains a secret", where)
					}
				}
			}
			pushtest.MustContain(t, texts[filepath.Join(out, "zuul.json")], "docker://localhost:5000/"+repo+"@"+pushtest.Digest(t, img))
			pushtest.MustContain(t, texts[filepath.Join(out, "push.json")], `"nodeRepository": "localhost:5000/`+repo+`"`)
			for _, node := range e.nodes {
				if got := pushtest.TagDigest(t, node, repo, "v1"); got != pushtest.Digest(t, img) {
					t.Errorf("%s: v1 = %q", node, got)
				}
			}
		})
	}
}

// TestCLIStorageBadInput: storage-backed targets that cannot work exit 2
// with one line naming file, line and field, and start nothing.
func TestCLIStorageBadInput(t *testing.T) {
	e := newStorageEnv(t)
	dir := pushtest.WriteLayout(t, pushtest.RandomImage(t, 1, 1000))
	tmp := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	swift := "    swift:\n      authurl: https://keystone.example:5000/v3\n      container: docker_registry\n      username: trustee\n"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"registry and swift", []string{"--targets", write("both.yaml", "regions:\n  - name: a\n    registry: reg.a:5000\n"+swift)},
			"both.yaml:4: regions[0].swift: a region gives registry (a registry to push to) or swift (the storage of its node registries), not both"},
		{"swift without auth URL", []string{"--targets", write("nourl.yaml", "regions:\n  - name: a\n    swift:\n      container: docker_registry\n")},
			"nourl.yaml:3: regions[0].swift.authurl: the Keystone auth URL is empty"},
		{"unknown key", []string{"--targets", write("unknown.yaml", "regions:\n  - name: a\n"+swift+"      trustee: x\n")},
			"unknown.yaml:7: regions[0].swift.trustee: unknown field (known: authurl,"},
		{"password in the targets", []string{"--targets", write("pw.yaml", "regions:\n  - name: a\n"+swift+"      password: pw-in-targets\n")},
			"pw.yaml:7: regions[0].swift.password: a credential is not read from the targets file"},
		{"missing credential", []string{"--targets", write("nocred.yaml", "regions:\n  - name: x\n    registry: reg.x:5000\n  - name: a\n"+swift)},
			"nocred.yaml:5: regions[1].swift: no Swift password for region a (give swift_credentials.a: {username, password, trustid} in the secrets file, or SLIPWAY_SWIFT_A_USERNAME and SLIPWAY_SWIFT_A_PASSWORD"},
		{"repair without deep", []string{"--result", write("r.json", "{}"), "--repair"}, "--repair needs --deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"push", "--state-dir", e.stateDir, "--source", "oci:" + dir, "--repository", "x/y"}, tt.args...)
			if tt.name == "repair without deep" {
				args = append([]string{"verify"}, tt.args...)
			}
			code, stdout, stderr := runCLI(t, args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != 2 || stdout != "" || len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and one line with %q", code, stdout, stderr, tt.want)
			}
			if strings.Contains(stderr, "pw-in-targets") {
				t.Errorf("the error shows the password")
			}
		})
	}
	if entries, _ := filepath.Glob(filepath.Join(e.stateDir, "reg-*")); len(entries) > 0 {
		t.Errorf("bad input started registries: %v", entries)
	}
}

// TestCLIStoragePromoteVerify: promote copies an image by digest from the
// buildset registry to storage-backed regions; verify, verify --deep and
// verify --deep --repair read it back through registries of their own.
func TestCLIStoragePromoteVerify(t *testing.T) {
	e := newStorageEnv(t)
	bs := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_BUILDSET")
	img := pushtest.RandomImage(t, 2, 50_000)
	digest := pushtest.Digest(t, img)
	repo := pushtest.UniqueRepo(t)
	code, _, stderr := runCLI(t, "push", "--region", "bs="+bs, "--source", "oci:"+pushtest.WriteLayout(t, img), "--repository", repo)
	if code != 0 {
		t.Fatalf("push to the buildset registry: exit %d: %s", code, stderr)
	}
	resultFile := filepath.Join(t.TempDir(), "push.json")
	code, stdout, stderr := runCLI(t, e.args("promote", "--source", bs+"/"+repo+"@"+digest, "--tag", "v1", "--result", resultFile)...)
	if code != 0 {
		t.Fatalf("promote: exit %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, "localhost:5000/"+repo+"@"+digest+"\n"); n != 2 {
		t.Errorf("promote stdout = %q, want a reference per region", stdout)
	}
	for _, node := range e.nodes {
		if got := pushtest.TagDigest(t, node, repo, "v1"); got != digest {
			t.Errorf("%s: v1 = %q after promote, want %s", node, got, digest)
		}
	}
	code, _, stderr = runCLI(t, "verify", "--result", resultFile)
	if code != 2 || !strings.Contains(stderr, "region a was pushed through push-registry's own registry on its Swift storage: give the targets file") {
		t.Errorf("verify without the targets: exit %d: %s", code, stderr)
	}
	for _, deep := range [][]string{nil, {"--deep"}, {"--deep", "--repair"}} {
		code, stdout, stderr := runCLI(t, e.args("verify", append([]string{"--result", resultFile}, deep...)...)...)
		if code != 0 || stdout != "verified\n" {
			t.Errorf("verify %v: exit %d, stdout %q: %s", deep, code, stdout, stderr)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(e.stateDir, "reg-*")); len(entries) > 0 {
		t.Errorf("verify left registry state: %v", entries)
	}
}

// TestCLIStorageCrash kills push-registry (kill -9, at named steps) while
// it pushes to storage-backed regions: no tag moved anywhere before the tag
// step, the child registries die with it, and one rerun finishes the push,
// stops nothing it should not and leaves no registry or state behind.
func TestCLIStorageCrash(t *testing.T) {
	e := newStorageEnv(t)
	bin := testenv.CrashBinary(t, "./cmd/push-registry")
	img := pushtest.RandomImage(t, 2, 1500<<10)
	digest := pushtest.Digest(t, img)
	layout := pushtest.WriteLayout(t, img)
	for _, point := range []string{"push.registry-started", "push.storage-open", "push.blob-uploaded:2", "push.manifest", "push.verified", "push.tag:2"} {
		t.Run(point, func(t *testing.T) {
			repo := pushtest.UniqueRepo(t)
			args := e.args("push", "--source", "oci:"+layout, "--repository", repo, "--tag", "v1", "--tag", "v2")
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), crashpoint.EnvPoint+"="+point, "HOME="+t.TempDir())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
				t.Fatalf("push-registry was not killed at %s: %v\n%s", point, err, stderr.String())
			}
			// The children die with it (SIGKILL on parent death).
			waitGone(t, e.stateDir)
			if !strings.HasPrefix(point, "push.tag") {
				for _, node := range e.nodes {
					if got := pushtest.TagDigest(t, node, repo, "v1"); got != "" {
						t.Errorf("%s: tag v1 moved before the crash at %s", node, point)
					}
				}
			}
			code, _, errOut := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("rerun after a crash at %s: exit %d:\n%s", point, code, errOut)
			}
			for _, node := range e.nodes {
				for _, tag := range []string{"v1", "v2"} {
					if got := pushtest.TagDigest(t, node, repo, tag); got != digest {
						t.Errorf("after the rerun, %s: tag %s = %q, want %s", node, tag, got, digest)
					}
				}
			}
			waitGone(t, e.stateDir)
			if entries, _ := filepath.Glob(filepath.Join(e.stateDir, "reg-*")); len(entries) > 0 {
				t.Errorf("state left after the rerun: %v", entries)
			}
		})
	}
}

// waitGone fails unless every registry started under state has exited
// within a few seconds.
func waitGone(t *testing.T, state string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		left := pushtest.Running(state)
		if len(left) == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("registries still running: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCLIStorageSignal sends SIGTERM to push-registry while it pushes to
// storage-backed regions: it exits 1 saying it was interrupted, with no
// tag moved and its registries stopped and their state removed.
func TestCLIStorageSignal(t *testing.T) {
	e := newStorageEnv(t)
	bin := testenv.Binary(t, "", "./cmd/push-registry")
	repo := pushtest.UniqueRepo(t)
	cmd := exec.Command(bin, e.args("push", "--source", "oci:"+pushtest.WriteLayout(t, pushtest.RandomImage(t, 3, 2<<20)), "--repository", repo, "--tag", "v1")...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for ready := 0; ready < 2; {
		if ctx.Err() != nil {
			cmd.Process.Kill()
			t.Fatalf("the registries never came up: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		dirs, _ := filepath.Glob(filepath.Join(e.stateDir, "reg-*"))
		ready = 0
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "pid")); err == nil {
				if _, err := os.Stat(filepath.Join(d, "config.yml")); os.IsNotExist(err) {
					ready++
				}
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // into the blobs
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want code 1; stderr:\n%s", err, stderr.String())
	}
	pushtest.MustContain(t, stderr.String(), "interrupted", "no tag was moved in any region")
	waitGone(t, e.stateDir)
	if entries, _ := filepath.Glob(filepath.Join(e.stateDir, "reg-*")); len(entries) > 0 {
		t.Errorf("state left after SIGTERM: %v", entries)
	}
	for _, node := range e.nodes {
		if got := pushtest.TagDigest(t, node, repo, "v1"); got != "" {
			t.Errorf("%s: tag v1 moved by an interrupted push", node)
		}
	}
}
