package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/buildimage/buildtest"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// runCLI runs build-image in-process as main does and returns the exit
// code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	app := app()
	var stdout, stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stdout, &stderr
	code := cli.Run(context.Background(), app, append([]string{"build-image"}, args...))
	return code, stdout.String(), stderr.String()
}

// TestCLIBadInput: each bad input exits 2 with one line naming the file,
// line, field and value (or the flag), and builds nothing.
func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"ctx/Dockerfile": "FROM scratch\n", "site/a": "a"})
	files := map[string]string{
		"unknown.yaml":    "images:\n  - name: a\n    context: ctx\n    bulid_args: {}\n",
		"nocontext.yaml":  "images:\n  - name: a\n    context: missing\n",
		"nodocker.yaml":   "images:\n  - name: a\n    context: ctx\n    dockerfile: Dockerfile.missing\n",
		"cycle.yaml":      "images:\n  - {name: a, context: ctx, depends_on: [b]}\n  - {name: b, context: ctx, depends_on: [a]}\n",
		"badtag.yaml":     "images:\n  - name: a\n    context: ctx\n    tags: [\"v1 beta\"]\n",
		"ok.yaml":         "images:\n  - {name: a, context: ctx}\n",
		"zuul-bad.yaml":   "zuul: {change: abc, patchset: 1}\n",
		"native-ok.yaml":  "images:\n  - {name: a, native: {layers: [{src: site, dest: /s}]}}\n",
		"later-bad.yaml":  "images:\n  - {name: a, native: {layers: [{src: site, dest: /s}]}}\n  - {name: b, context: ctx, tags: [\"-x\"]}\n",
		"docker-ok.yaml":  "images:\n  - {name: a, context: ctx}\n",
		"emptyfile.yaml":  "",
		"wrongtype.yaml":  "images:\n  - name: a\n    context: ctx\n    depends_on: b\n",
		"badnative.yaml":  "images:\n  - name: a\n    native:\n      layers: [{src: site, dest: relative}]\n",
		"buildargs.yaml":  "images:\n  - name: a\n    context: ctx\n    build_args: {\"1X\": y}\n",
		"repository.yaml": "images:\n  - name: a\n    context: ctx\n    repository: docker.io/acme/a\n",
	}
	buildtest.WriteTree(t, dir, files)
	f := func(name string) string { return filepath.Join(dir, name) }
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown field", []string{"-f", f("unknown.yaml")}, nil, f("unknown.yaml") + `:4: images[0].bulid_args: unknown field (known: build_args,`},
		{"missing context", []string{"-f", f("nocontext.yaml")}, nil, f("nocontext.yaml") + `:3: images[0].context: "missing": no such directory`},
		{"missing dockerfile", []string{"-f", f("nodocker.yaml")}, nil, f("nodocker.yaml") + `:4: images[0].dockerfile: "Dockerfile.missing": no such file`},
		{"cycle", []string{"-f", f("cycle.yaml")}, nil, f("cycle.yaml") + `:2: images[0].depends_on: dependency cycle between images: a -> b -> a`},
		{"invalid tag", []string{"-f", f("badtag.yaml")}, nil, f("badtag.yaml") + `:4: images[0].tags[0]: "v1 beta" is not a valid tag`},
		{"invalid tag of a later image", []string{"-f", f("later-bad.yaml")}, nil, f("later-bad.yaml") + `:3: images[1].tags[0]: "-x" is not a valid tag`},
		{"wrong type", []string{"-f", f("wrongtype.yaml")}, nil, f("wrongtype.yaml") + `:4: images[0].depends_on: must be a list, not "b"`},
		{"native relative dest", []string{"-f", f("badnative.yaml")}, nil, f("badnative.yaml") + `:4: images[0].native.layers[0].dest: "relative" must be an absolute path`},
		{"bad build arg name", []string{"-f", f("buildargs.yaml")}, nil, f("buildargs.yaml") + `:4: images[0].build_args.1X: "1X" is not a valid build arg name`},
		{"repository with host", []string{"-f", f("repository.yaml")}, nil, f("repository.yaml") + `:4: images[0].repository: "docker.io/acme/a" is not a valid repository`},
		{"empty file", []string{"-f", f("emptyfile.yaml")}, nil, f("emptyfile.yaml") + ": empty file: it needs an `images` list"},
		{"missing file", []string{"-f", f("nope.yaml")}, nil, f("nope.yaml") + `: cannot read: no such file or directory`},
		{"bad --build-arg", []string{"-f", f("ok.yaml"), "--build-arg", "NOVALUE"}, nil, `--build-arg: "NOVALUE" is not KEY=VALUE`},
		{"bad SOURCE_DATE_EPOCH", []string{"-f", f("ok.yaml")}, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, `--source-date-epoch (SOURCE_DATE_EPOCH): "yesterday" is not a number`},
		{"bad zuul vars", []string{"-f", f("ok.yaml"), "--zuul-vars", f("zuul-bad.yaml")}, nil, `zuul.change "abc" is not a number`},
		{"bad zuul env", []string{"-f", f("ok.yaml")}, map[string]string{"ZUUL_CHANGE": "12", "ZUUL_PATCHSET": "x"}, `zuul.patchset "x" is not a number`},
		{"unknown backend", []string{"-f", f("ok.yaml"), "--backend", "kaniko"}, nil, `--backend: "kaniko" is not buildah or docker`},
		{"docker without daemon", []string{"-f", f("docker-ok.yaml"), "--backend", "docker"}, map[string]string{"DOCKER_HOST": "unix://" + f("no-docker.sock")}, `--backend: "docker": `},
		{"bad storage driver", []string{"-f", f("ok.yaml"), "--storage-driver", "btrfs"}, nil, `--storage-driver: "btrfs" is not overlay or vfs`},
		{"file and flags", []string{"-f", f("ok.yaml"), "--context", dir, "--repository", "a"}, nil, `exclude each other`},
		{"flags without repository", []string{"--context", dir}, nil, `--repository: missing`},
		{"native flag without --native", []string{"--context", dir, "--repository", "a", "--add", "a:/b"}, nil, `--add is for native images: add --native`},
		{"bad --add", []string{"--native", "--repository", "a", "--add", "nocolon"}, nil, `--add: "nocolon" is not SRC:DEST`},
		{"bad --entrypoint", []string{"--native", "--repository", "a", "--entrypoint", "[/bin/sh"}, nil, `--entrypoint: "[/bin/sh" is not a JSON array`},
		{"flags: missing context dir", []string{"--context", f("nope"), "--repository", "acme/a"}, nil, `--context: "` + f("nope") + `": no such directory`},
		{"flags: invalid tag", []string{"--context", f("ctx"), "--repository", "acme/a", "--tag", "a/b"}, nil, `--tag: "a/b" is not a valid tag`},
		{"unknown flag", []string{"--contxt", dir}, nil, `flag provided but not defined: -contxt`},
		{"output inside a native layer", []string{"--native", "--repository", "a", "--add", dir + ":/srv", "--output", f("inside/out")}, nil,
			`--add: "` + dir + `" contains the output directory ` + f("inside/out")},
		{"flags: bad secret", []string{"--context", f("ctx"), "--repository", "a", "--secret", "pip=vault:x"}, nil, `--secret: "pip=vault:x" is not ID=env:VAR or ID=file:PATH`},
		{"flags: secret env unset", []string{"--context", f("ctx"), "--repository", "a", "--secret", "pip=env:SLIPWAY_UNSET_TOKEN"}, nil,
			`--secret: secret "pip": the environment variable SLIPWAY_UNSET_TOKEN is not set`},
		{"nothing to build", nil, nil, `nothing to build`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out := filepath.Join(t.TempDir(), "out")
			args := tc.args
			if i := indexOf(args, "--output"); i >= 0 {
				out = args[i+1]
			} else {
				args = append(args, "--output", out)
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != cli.ExitUsage {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, cli.ExitUsage, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "build-image: ") || !strings.Contains(last, tc.want) {
				t.Errorf("last stderr line = %q, want it to contain %q", last, tc.want)
			}
			if stdout != "" && tc.name != "unknown flag" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output directory %s exists after bad input (err %v): something was built", out, err)
			}
		})
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// TestCLINative: a native image from flags; stdout is exactly the result
// document (logs go to stderr), the same as the result file.
func TestCLINative(t *testing.T) {
	src := t.TempDir()
	buildtest.SampleTree(t, src, 0o644, time.Now())
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runCLI(t, "--native", "--repository", "acme/site", "--add", src+":/srv/www", "--env", "PORT=8080",
		"--entrypoint", `["/bin/httpd","-f"]`, "--tag", "v1", "--tag", "latest", "--source-date-epoch", "1700000000", "--output", out)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	var res result.BuildResult
	if err := result.Decode(strings.NewReader(stdout), &res); err != nil {
		t.Fatalf("stdout is not a build result: %v\n%s", err, stdout)
	}
	var file result.BuildResult
	if err := result.ReadFile(filepath.Join(out, "build-result.json"), &file); err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 1 || res.Images[0].ManifestDigest != file.Images[0].ManifestDigest || res.Images[0].Name != "site" {
		t.Errorf("stdout result %+v, file %+v", res.Images, file.Images)
	}
	if diff := cmp.Diff(file, res); diff != "" || !strings.HasPrefix(res.Tool, "build-image ") {
		t.Errorf("stdout is not the result file (tool %q) (-file +stdout):\n%s", res.Tool, diff)
	}
	if strings.Contains(stdout, "level=") || !strings.Contains(stderr, "built image") {
		t.Errorf("logs on the wrong stream: stdout %q, stderr %q", stdout, stderr)
	}
	// Rerunning with the same inputs changes nothing and says so.
	code, stdout2, stderr2 := runCLI(t, "--native", "--repository", "acme/site", "--add", src+":/srv/www", "--env", "PORT=8080",
		"--entrypoint", `["/bin/httpd","-f"]`, "--tag", "v1", "--tag", "latest", "--source-date-epoch", "1700000000", "--output", out)
	if code != 0 || !strings.Contains(stderr2, "image unchanged since the last run") {
		t.Errorf("rerun: exit %d, stderr %q", code, stderr2)
	}
	var res2 result.BuildResult
	if err := result.Decode(strings.NewReader(stdout2), &res2); err != nil || res2.Images[0].ManifestDigest != res.Images[0].ManifestDigest {
		t.Errorf("rerun digest %+v (err %v), want %s", res2.Images, err, res.Images[0].ManifestDigest)
	}
}

// TestCLIFailingRun: a failing RUN exits 1 with one line naming the image,
// the step and its output.
func TestCLIFailingRun(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo 'pip: no matching distribution' >&2; exit 1\n"})
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCLI(t, "--context", dir, "--repository", "acme/a", "--build-arg", "BASE_IMAGE="+base,
		"--insecure-registry", registry, "--work-dir", dir, "--output", out)
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	want := `build-image: building image a failed at step "RUN echo 'pip: no matching distribution' >&2; exit 1" (exit status 1); last output: pip: no matching distribution`
	if code != cli.ExitFailed || lines[len(lines)-1] != want || stdout != "" {
		t.Errorf("exit %d, stdout %q, last stderr line:\n%s\nwant:\n%s", code, stdout, lines[len(lines)-1], want)
	}
}

// TestSecretsStayOut: registry credentials given the usual ways (auth
// files named by REGISTRY_AUTH_FILE and DOCKER_CONFIG) appear in no
// output, result file or zuul_return data of a build that pulls from that
// registry with buildah and natively.
func TestSecretsStayOut(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	const password = "s3cr3t-Registry-Passw0rd"
	dir := t.TempDir()
	auth := `{"auths":{"` + registry + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("ci:"+password)) + `"}}}`
	buildtest.WriteTree(t, dir, map[string]string{
		"auth.json": auth, "docker/config.json": auth,
		"app/Dockerfile":  "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo built\n",
		"site/index.html": "hi",
		"build.yaml":      "images:\n  - {name: app, context: app}\n  - name: site\n    native: {base: \"${BASE_IMAGE}\", layers: [{src: site, dest: /srv}]}\n",
	})
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(dir, "auth.json"))
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))
	out := filepath.Join(dir, "out")
	zr := filepath.Join(dir, "zuul-return.json")
	code, stdout, stderr := runCLI(t, "-f", filepath.Join(dir, "build.yaml"), "--build-arg", "BASE_IMAGE="+base, "--insecure-registry", registry,
		"--work-dir", dir, "--output", out, "--zuul-return", zr, "--debug")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	res, _ := os.ReadFile(filepath.Join(out, "build-result.json"))
	zdata, _ := os.ReadFile(zr)
	for name, data := range map[string]string{"stdout": stdout, "stderr": stderr, "result file": string(res), "zuul_return": string(zdata)} {
		if strings.Contains(data, password) || strings.Contains(data, base64.StdEncoding.EncodeToString([]byte("ci:"+password))) {
			t.Errorf("the registry password appears in %s", name)
		}
	}
	var doc map[string]any
	if err := json.Unmarshal(zdata, &doc); err != nil {
		t.Errorf("zuul_return data is not JSON: %v", err)
	}
}

// TestBuildSecrets: a secret from the environment and one from a file reach
// RUN --mount=type=secret, and appear in no layer, config, history, log
// line (even when the RUN prints it), result, or buildah command line.
func TestBuildSecrets(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	const token, fileSecret = "pypi-Tok3n-for-private-index", "file-Secr3t-value"
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{
		"ctx/Dockerfile": `ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN --mount=type=secret,id=pip --mount=type=secret,id=npm echo "token is $(cat /run/secrets/pip), file is $(cat /run/secrets/npm)" \
 && cat /run/secrets/pip /run/secrets/npm | wc -c >/used
`,
		"npm.txt": fileSecret,
		"buildah": "#!/bin/sh\nprintf '%s\\n' \"$*\" >>\"" + filepath.Join(dir, "args.log") + "\"\nexec buildah \"$@\"\n",
	})
	if err := os.Chmod(filepath.Join(dir, "buildah"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLIPWAY_TEST_PIP_TOKEN", token)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCLI(t, "--context", filepath.Join(dir, "ctx"), "--repository", "acme/a",
		"--secret", "pip=env:SLIPWAY_TEST_PIP_TOKEN", "--secret", "npm=file:"+filepath.Join(dir, "npm.txt"),
		"--build-arg", "BASE_IMAGE="+base, "--insecure-registry", registry, "--work-dir", dir, "--output", out,
		"--buildah", filepath.Join(dir, "buildah"))
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "token is [redacted], file is [redacted]") {
		t.Errorf("the RUN's output of the secret is not redacted in the log:\n%s", stderr)
	}
	args, err := os.ReadFile(filepath.Join(dir, "args.log"))
	if err != nil || !strings.Contains(string(args), "--secret") {
		t.Fatalf("buildah wrapper saw no --secret (err %v): %s", err, args)
	}
	texts := map[string]string{"stdout": stdout, "stderr": stderr, "buildah arguments": string(args)}
	// Every blob of the layout, layers uncompressed.
	var res result.BuildResult
	if err := result.ReadFile(filepath.Join(out, "build-result.json"), &res); err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(res.Images[0].Layout, "blobs", "sha256", "*"))
	for _, b := range blobs {
		data, _ := os.ReadFile(b)
		texts["blob "+filepath.Base(b)] = string(data)
	}
	files := buildtest.ImageFiles(t, res.Images[0].Layout, res.Images[0].ManifestDigest)
	var all strings.Builder
	for name, content := range files {
		all.WriteString(name + "\n" + content)
	}
	texts["image files"] = all.String()
	if want := fmt.Sprintf("%d\n", len(token)+len(fileSecret)); strings.TrimLeft(files["used"], " ") != want {
		t.Errorf("the RUN with secrets did not run: /used = %q", files["used"])
	}
	for name, text := range texts {
		for _, secret := range []string{token, fileSecret} {
			if strings.Contains(text, secret) {
				t.Errorf("secret %q appears in %s", secret[:8]+"...", name)
			}
		}
	}
}

// TestCLIJSONLogs: with --log-format json every stderr line, buildah's
// build output included, is a JSON record.
func TestCLIJSONLogs(t *testing.T) {
	testenv.Tool(t, "buildah")
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": "a"})
	code, stdout, stderr := runCLI(t, "--log-format", "json", "--context", dir, "--repository", "acme/a", "--work-dir", dir,
		"--output", filepath.Join(dir, "out"))
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var res result.BuildResult
	if err := result.Decode(strings.NewReader(stdout), &res); err != nil {
		t.Errorf("stdout is not the build result: %v", err)
	}
	buildLines := 0
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %q", l)
			continue
		}
		if rec["msg"] == "build output" {
			buildLines++
		}
	}
	if buildLines == 0 {
		t.Errorf("no buildah output in the JSON log:\n%s", stderr)
	}
}
