// Package inputs checks the one promise every stage makes about the files
// a user writes: whatever the file, an unknown key, a value of the wrong
// type and a bad value are each one error line in one format,
//
//	BINARY: FILE:LINE: field.path: what is wrong (what is allowed)
//
// with exit code 2, nothing on stdout and nothing written; no message names
// a Go type. The binaries are run as the pipeline runs them.
package inputs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/test/zuulconfig"
)

func example(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	binsOnce sync.Once
	bins     map[string]string
	binsErr  error
	binsDir  string
)

func bin(t *testing.T, name string) string {
	t.Helper()
	binsOnce.Do(func() {
		binsDir, binsErr = os.MkdirTemp("", "inputs-bin")
		if binsErr == nil {
			bins, binsErr = testenv.Binaries(binsDir, "", "./cmd/...")
		}
	})
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return bins[name]
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
	os.Exit(code)
}

// fault is one edit of a good file: old (which must occur in it) becomes
// new, and the error must name field at the line new starts on, with a
// message matching msg.
type fault struct {
	kind, old, new, field, msg string
}

// The three faults every kind is tested with; msg says the shape of the
// message, what is allowed included.
const (
	unknownKey = "unknown key"
	wrongType  = "wrong type"
	badValue   = "bad value"
)

var msgShape = map[string]*regexp.Regexp{
	unknownKey: regexp.MustCompile(`^unknown field \(known: [A-Za-z_0-9, -]+\)$`),
	wrongType:  regexp.MustCompile(`^must be [^()]+, not .+$`),
	badValue:   regexp.MustCompile(`^.+ \(.+\)$`),
}

// goish is what a message leaking the decoder's internals would contain.
var goish = regexp.MustCompile(`\b[a-z]\w*\.[A-Z]\w*\b|!!|unmarshal|reflect|\bstruct\b|\bint64\b|\bfloat64\b`)

// fileKind is a file users write, the good content it is edited from and
// the command that reads it.
type fileKind struct {
	name, bin, file string
	good            func(t *testing.T) string
	mode            os.FileMode
	// args is the command line reading file (an absolute path) in dir;
	// every path it names as output is under dir/out.
	args   func(t *testing.T, dir, file string) []string
	faults []fault
}

func kinds() []fileKind {
	return []fileKind{
		{
			name: "build file", bin: "build-image", file: "build.yaml",
			good: func(t *testing.T) string {
				return "images:\n  - name: app\n    context: .\n    tags: [v1]\n"
			},
			args: func(_ *testing.T, dir, file string) []string {
				return []string{"--file", file, "--output", filepath.Join(dir, "out"), "--result", filepath.Join(dir, "out", "r.json")}
			},
			faults: []fault{
				{unknownKey, "    context: .\n", "    contxt: .\n", "images[0].contxt", `known: build_args, context,`},
				{wrongType, "  - name: app\n", "  - name: [app]\n", "images[0].name", `must be a string, not a list`},
				{badValue, "  - name: app\n", "  - name: App_1!\n", "images[0].name", `"App_1!" is not a valid image name`},
			},
		},
		{
			name: "debian lock", bin: "build-image", file: "deb.lock",
			good: func(t *testing.T) string { return example(t, "examples/images/backup/backup.lock") },
			args: func(t *testing.T, dir, file string) []string {
				build := filepath.Join(dir, "native.yaml")
				write(t, build, "images:\n  - name: b\n    native:\n      layers:\n        - debian: {lock: "+filepath.Base(file)+"}\n", 0o644)
				return []string{"--file", build, "--output", filepath.Join(dir, "out"), "--result", filepath.Join(dir, "out", "r.json")}
			},
			faults: []fault{
				{unknownKey, "architecture: amd64\n", "architecture: amd64\narch: arm64\n", "arch", `known: architecture, packages, roots, sources`},
				{wrongType, "    size: 160948\n", "    size: [160948]\n", "packages[0].size", `must be a whole number, not a list`},
				{badValue, "    sha256: b9f76b", "    sha256: Zb9f76b", "packages[0].sha256", `is not a SHA-256 \(64 lowercase hex digits\)`},
			},
		},
		{
			name: "cluster spec", bin: "magnum-cluster", file: "cluster.yaml",
			good: func(t *testing.T) string { return example(t, "examples/cluster/local.yaml") },
			args: func(_ *testing.T, dir, file string) []string {
				return []string{"cluster", "ensure", "--spec", file, "--kubeconfig", filepath.Join(dir, "out", "kubeconfig"), "--result", filepath.Join(dir, "out", "r.json")}
			},
			faults: []fault{
				{unknownKey, "  flavor: m1.small\n", "  flavour: m1.small\n", "template.flavour", `known: apiserver_port, coe,`},
				{wrongType, "  node_count: 2\n", "  node_count: two\n", "cluster.node_count", `must be a whole number, not "two"`},
				{badValue, "  node_count: 2\n", "  node_count: -2\n", "cluster.node_count", `-2 is too small \(0 or more\)`},
			},
		},
		{
			name: "push targets", bin: "push-registry", file: "targets.yaml",
			good: func(t *testing.T) string {
				return "regions:\n  - name: a\n    registry: 127.0.0.1:9\n    insecure: true\n"
			},
			args: func(t *testing.T, dir, file string) []string {
				return []string{"push", "--targets", file, "--source", "oci:" + layout(t), "--repository", "acme/app", "--tag", "v1", "--result", filepath.Join(dir, "out", "r.json")}
			},
			faults: []fault{
				{unknownKey, "    registry: 127", "    regsitry: 127", "regions[0].regsitry", `known: .*registry`},
				{wrongType, "    insecure: true\n", "    insecure: very\n", "regions[0].insecure", `must be true or false, not "very"`},
				{badValue, "  - name: a\n", "  - name: Region A\n", "regions[0].name", `"Region A" is not valid`},
			},
		},
		{
			name: "push secrets", bin: "push-registry", file: "secrets.yaml", mode: 0o600,
			good: func(t *testing.T) string {
				return "other_var: kept\nregistry_credentials:\n  a: {username: ci, password: s3cr3t-value}\nswift_credentials:\n  a: {username: ci, password: s3cr3t-value}\n"
			},
			args: func(t *testing.T, dir, file string) []string {
				targets := filepath.Join(dir, "targets.yaml")
				write(t, targets, "regions:\n  - name: a\n    registry: 127.0.0.1:9\n", 0o644)
				return []string{"push", "--targets", targets, "--secrets-file", file, "--source", "oci:" + layout(t), "--repository", "acme/app", "--tag", "v1", "--result", filepath.Join(dir, "out", "r.json")}
			},
			faults: []fault{
				{unknownKey, "{username: ci, password: s3cr3t-value}\nswift", "{username: ci, pasword: s3cr3t-value}\nswift", "registry_credentials.a.pasword", `known: password, token, username`},
				{wrongType, "  a: {username: ci, password: s3cr3t-value}\nswift", "  a: {username: [ci], password: s3cr3t-value}\nswift", "registry_credentials.a.username", `must be a string, not a list`},
				{badValue, "swift_credentials:\n  a: {username: ci, password: s3cr3t-value}\n", "swift_credentials:\n  a: {username: ci, password: \"\"}\n", "swift_credentials.a", `password is empty`},
			},
		},
		{
			name: "deploy secrets", bin: "deploy-k8s", file: "secrets.yaml", mode: 0o600,
			good: func(t *testing.T) string { return "secrets:\n  mysql:\n    password: s3cr3t-value\n" },
			args: func(t *testing.T, dir, file string) []string {
				man := filepath.Join(dir, "manifests")
				write(t, filepath.Join(man, "cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", 0o644)
				return []string{"deploy", "--secrets-file", file, "--manifests", man, "--branch", "platform/acme", "--kubeconfig", filepath.Join(dir, "no-kubeconfig"), "--result", filepath.Join(dir, "out", "r.json")}
			},
			faults: []fault{
				{unknownKey, "secrets:\n", "secret:\n", "secret", `known: secrets`},
				{wrongType, "  mysql:\n    password: s3cr3t-value\n", "  mysql: [s3cr3t-value]\n", "secrets.mysql", `must be a mapping of key: value, not a list`},
				{badValue, "  mysql:\n", "  My_SQL:\n", "secrets.My_SQL", `"My_SQL" is not a Secret name`},
			},
		},
		{
			name: "backup values", bin: "backup", file: "values.yaml",
			good: func(t *testing.T) string { return example(t, "examples/backup/primary.yaml") },
			args: func(_ *testing.T, _, file string) []string { return []string{"cronjob", "--values", file} },
			faults: []fault{
				{unknownKey, "role: primary\n", "role: primary\nrol: dr\n", "rol", `known: activeDeadlineSeconds,`},
				{wrongType, "  port: 3306\n", "  port: [3306]\n", "mysql.port", `must be a whole number, not a list`},
				{badValue, "  port: 3306\n", "  port: 99999\n", "mysql.port", `99999 is not a port \(1-65535\)`},
			},
		},
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// layout is a small OCI layout of the case's own (a shared one would live
// in the first case's temporary directory, removed when it ends).
func layout(t *testing.T) string {
	return pushtest.WriteLayout(t, pushtest.RandomImage(t, 1, 512))
}

// lineOf is the 1-based line in s of the key field (a.b[0].key) within the
// edit new, else of new's start.
func lineOf(s, new, field string) int {
	at := strings.Index(s, new)
	key := field[strings.LastIndexAny(field, ".")+1:]
	if i := strings.Index(key, "["); i >= 0 {
		key = key[:i]
	}
	if loc := regexp.MustCompile(`\b` + regexp.QuoteMeta(key) + `:`).FindStringIndex(new); loc != nil {
		at += loc[0]
	}
	return strings.Count(s[:at], "\n") + 1
}

// check checks the error line of f in the file bad: it starts with
// "where:LINE: field: " and its message has the fault's shape, matches
// f.msg and names no Go type.
func (f fault) check(t *testing.T, line, where, bad string) {
	t.Helper()
	prefix := where + ":" + strconv.Itoa(lineOf(bad, f.new, f.field)) + ": " + f.field + ": "
	msg, ok := strings.CutPrefix(line, prefix)
	if !ok {
		t.Fatalf("error %q\ndoes not start with %q", line, prefix)
	}
	if !msgShape[f.kind].MatchString(msg) {
		t.Errorf("%s: message %q does not say what is allowed in the shape %s", f.kind, msg, msgShape[f.kind])
	}
	if !regexp.MustCompile(f.msg).MatchString(msg) {
		t.Errorf("message %q does not match %q", msg, f.msg)
	}
	if m := goish.FindString(msg); m != "" {
		t.Errorf("message %q names the decoder's internals (%q)", msg, m)
	}
}

// TestEveryFileKindOneErrorFormat runs each command on each file kind with
// each fault.
func TestEveryFileKindOneErrorFormat(t *testing.T) {
	for _, k := range kinds() {
		for _, f := range k.faults {
			t.Run(k.name+"/"+f.kind, func(t *testing.T) {
				good := k.good(t)
				if strings.Count(good, f.old) < 1 {
					t.Fatalf("the good %s has no %q", k.name, f.old)
				}
				bad := strings.Replace(good, f.old, f.new, 1)
				dir := t.TempDir()
				file := filepath.Join(dir, k.file)
				mode := k.mode
				if mode == 0 {
					mode = 0o644
				}
				write(t, file, bad, mode)
				cmd := exec.Command(bin(t, k.bin), k.args(t, dir, file)...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "HOME="+dir)
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				if code != 2 {
					t.Fatalf("exit code %d (%v), want 2; stderr:\n%s", code, err, stderr.String())
				}
				if stdout.Len() != 0 {
					t.Errorf("stdout = %q, want nothing", stdout.String())
				}
				lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
				if len(lines) != 1 {
					t.Fatalf("stderr is %d lines, want one:\n%s", len(lines), stderr.String())
				}
				f.check(t, lines[0], k.bin+": "+file, bad)
				if strings.Contains(lines[0], "s3cr3t-value") {
					t.Errorf("the error shows a secret value: %s", lines[0])
				}
				if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
					t.Errorf("bad input wrote %s (stat: %v)", filepath.Join(dir, "out"), err)
				}
			})
		}
	}
}

// TestZuulConfigOneErrorFormat: zuul.d, read by the project's own checker
// (test/zuulconfig, which zuul-local and the tests use), answers in the same
// format.
func TestZuulConfigOneErrorFormat(t *testing.T) {
	good := "- job:\n    name: a\n    run: playbooks/a.yaml\n    voting: true\n- project:\n    check:\n      jobs: [a]\n"
	for _, f := range []fault{
		{unknownKey, "    voting: true\n", "    votng: true\n", "job.votng", `known: .*voting`},
		{wrongType, "    voting: true\n", "    abstract: maybe\n", "job.abstract", `must be true or false, not "maybe"`},
		{badValue, "    voting: true\n", "    timeout: -5\n", "job.timeout", `-5 is not a timeout`},
	} {
		t.Run(f.kind, func(t *testing.T) {
			dir := t.TempDir()
			bad := strings.Replace(good, f.old, f.new, 1)
			write(t, filepath.Join(dir, "zuul.d", "jobs.yaml"), bad, 0o644)
			_, err := zuulconfig.LoadDir(dir)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
			f.check(t, err.Error(), "zuul.d/jobs.yaml", bad)
		})
	}
}
