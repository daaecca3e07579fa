package buildimage

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/buildimage/buildtest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// TestBackupLock: the checked-in lock of the backup image checks (every
// dependency locked) and holds what the MariaDB tools need to run.
func TestBackupLock(t *testing.T) {
	l, err := LoadDebianLock(filepath.Join(testenv.RepoRoot(), "examples/images/backup/backup.lock"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Packages {
		names = append(names, p.Name)
	}
	for _, want := range []string{"mariadb-client", "mariadb-client-core", "libmariadb3", "libc6", "libssl3", "zlib1g", "libstdc++6", "libgcc-s1", "libedit2", "libncurses6", "libtinfo6", "ca-certificates"} {
		if !slices.Contains(names, want) {
			t.Errorf("the backup lock has no %s (packages: %v)", want, names)
		}
	}
}

// staticBinary fails the test unless file is a static ELF executable (no
// program interpreter): the image's loader would not be the one it needs.
func staticBinary(t testing.TB, file string) {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; the backup image takes static binaries (CGO_ENABLED=0)", file)
		}
	}
}

// backupBinaries builds the backup binary as the pipeline does and
// returns it with the test tools' mongodump and mongorestore.
func backupBinaries(t *testing.T) map[string]string {
	t.Helper()
	tools := testenv.Require(t, "SLIPWAY_TEST_MONGODUMP", "SLIPWAY_TEST_MONGORESTORE")
	bins := map[string]string{"BACKUP_BIN": testenv.Binary(t, "", "./cmd/backup"), "MONGODUMP_BIN": tools[0], "MONGORESTORE_BIN": tools[1]}
	for _, b := range bins {
		staticBinary(t, b)
	}
	return bins
}

// TestBackupImage builds examples/images/backup twice, the second time
// from copies in other directories, and gets the same digest; the image's
// MariaDB client tools run with the image's own loader and libraries
// (chroot into its root filesystem as the image's user), and so do the
// static binaries. Packages come from deb.debian.org once per machine
// (cached under ~/.cache/slipway/debs).
func TestBackupImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestBackupImage runs the image's tools with chroot, which needs root")
	}
	bins := backupBinaries(t)
	epoch := time.Unix(1700000000, 0).UTC()
	build := func(buildFile string, args map[string]string) (layoutDir, digest string) {
		t.Helper()
		out := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		res, err := Run(ctx, Options{BuildFile: buildFile, OutputDir: out, Args: args, Epoch: &epoch})
		if err != nil {
			t.Fatalf("building %s: %v (the Debian packages come from deb.debian.org unless ~/.cache/slipway/debs has them)", buildFile, err)
		}
		if len(res.Images) != 1 {
			t.Fatalf("%d images built, want 1", len(res.Images))
		}
		im := res.Images[0]
		if im.Repository != "slipway/backup" {
			t.Errorf("repository %q, want slipway/backup", im.Repository)
		}
		return im.Layout, im.ManifestDigest
	}
	start := time.Now()
	first, d1 := build(filepath.Join(testenv.RepoRoot(), "examples/images/backup/build.yaml"), bins)
	t1 := time.Since(start)

	// The same inputs elsewhere: build file, lock and binaries copied.
	other := filepath.Join(t.TempDir(), "elsewhere")
	testenv.CopyDir(t, filepath.Join(testenv.RepoRoot(), "examples/images/backup"), other)
	copied := map[string]string{}
	for k, src := range bins {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(other, "bin", filepath.Base(src))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
		copied[k] = dst
	}
	start = time.Now()
	_, d2 := build(filepath.Join(other, "build.yaml"), copied)
	t2 := time.Since(start)
	if d1 != d2 {
		t.Errorf("two builds of the same inputs: %s and %s", d1, d2)
	}
	t.Logf("backup image %s: first build %s, second (other directory, warm cache) %s", d1, t1.Round(time.Millisecond), t2.Round(time.Millisecond))

	img := buildtest.LayoutImage(t, first, d1)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/backup"}) || c.User != "65532:65532" {
		t.Errorf("entrypoint %v user %q, want [/usr/local/bin/backup] and 65532:65532", c.Entrypoint, c.User)
	}
	if c.Labels[LabelSource] == "" || c.Labels[LabelCreated] != "2023-11-14T22:13:20Z" {
		t.Errorf("labels %v lack the standard ones", c.Labels)
	}
	if !slices.Contains(c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %v lacks SSL_CERT_FILE", c.Env)
	}

	root := extract(t, img)
	bundle, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if n := strings.Count(string(bundle), "BEGIN CERTIFICATE"); err != nil || n < 100 {
		t.Errorf("CA bundle: %d certificates (%v), want Debian's (over 100)", n, err)
	}
	for _, c := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"/usr/bin/mariadb-dump", "--version"}, "Distrib 10.11"},
		{[]string{"/usr/bin/mariadb", "--version"}, "Distrib 10.11"},
		{[]string{"/usr/local/bin/mongodump", "--version"}, "mongodump version"},
		{[]string{"/usr/local/bin/mongorestore", "--version"}, "mongorestore version"},
		{[]string{"/usr/local/bin/backup", "version"}, "backup "},
	} {
		// env -i: only what the image's config sets.
		args := append([]string{"-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "/usr/sbin/chroot", "--userspec=65532:65532", root}, c.cmd...)
		out, err := exec.Command("env", args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s in the image: %v\n%s\nwant output with %q", strings.Join(c.cmd, " "), err, out, c.want)
		}
	}
}

// extract unpacks the image's layers in order into a new directory with
// tar (which keeps modes and symlinks as the runtime would).
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil { // the image's / as its user sees it
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("tar", "-x", "-C", root)
		cmd.Stdin = rc
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar -x: %v\n%s", err, out)
		}
		rc.Close()
	}
	return root
}
