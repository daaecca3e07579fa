package push

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/runlock"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/usererr"
)

// keystone is the test env's Swift behind Keystone: one container per
// region, as Magnum gives each region's node registries.
type keystone struct {
	authURL, user, password, domain, project string
	regions, containers                      map[string]string // region name a/b → Keystone region, container
}

func testKeystone(t testing.TB) keystone {
	v := testenv.Require(t, "SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL", "SLIPWAY_TEST_SWIFT_KEYSTONE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN", "SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B")
	return keystone{v[0], v[1], v[2], v[3], v[4], map[string]string{"a": v[5], "b": v[7]}, map[string]string{"a": v[6], "b": v[8]}}
}

// region is a storage-backed region on the container of region a or b,
// with the keys Magnum writes (the project's user instead of a trustee:
// the emulator has no trusts).
func (k keystone) region(name string) Region {
	return Region{Name: name, Swift: &Swift{
		AuthURL: k.authURL, AuthVersion: 3, Region: k.regions[name], Container: k.containers[name],
		Username: k.user, Domain: k.domain, Tenant: k.project, TenantDomain: k.domain,
		ChunkSize: minChunkSize, InsecureSkipVerify: true, // Magnum: 5 MiB; small here for small multi-segment blobs
	}}
}

// auth gives every region the Keystone password through the environment.
func (k keystone) auth() Auth {
	return Auth{Env: func(name string) (string, bool) {
		if strings.HasPrefix(name, "SLIPWAY_SWIFT_") && strings.HasSuffix(name, "_PASSWORD") {
			return k.password, true
		}
		return "", false
	}}
}

// storageOpts push img to the storage-backed regions with a state
// directory of the test's own.
func (k keystone) storageOpts(t *testing.T, regions []Region, img pushtest.Content, repo string, tags ...string) Options {
	o := layoutOpts(t, regions, img, repo, tags...)
	o.Auth = k.auth()
	o.StateDir = t.TempDir()
	o.RegistryBinary = testenv.Tool(t, "docker-registry")
	o.Log = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return o
}

// store opens region's Swift container the way repairs do.
func (k keystone) store(t testing.TB, name string) *objectStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := newObjectStore(ctx, k.region(name), SwiftCredential{Username: k.user, Password: logging.Secret(k.password)}, *fastRetry(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// zeroBlob replaces blob d's object with a zero-byte one: what a failed
// upload leaves in Swift/Ceph.
func zeroBlob(t testing.TB, st *objectStore, d v1.Hash) {
	t.Helper()
	pushtest.ZeroObject(t, st.sc, st.container, st.blobObject(d))
}

// corruptBlob flips the bytes of the first segment of blob d, keeping its
// size: corruption at rest that a HEAD cannot see.
func corruptBlob(t testing.TB, st *objectStore, d v1.Hash) {
	t.Helper()
	pushtest.CorruptObject(t, st.sc, st.container, st.blobObject(d))
}

// mustBeClean fails when dir still holds a registry's state or process.
func mustBeClean(t testing.TB, dir string) {
	t.Helper()
	if left := pushtest.Running(dir); len(left) > 0 {
		t.Errorf("registries left running: %v", left)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*-*")); len(entries) > 0 {
		t.Errorf("registry state left: %v", entries)
	}
}

// TestStorageRegions pushes to two storage-backed regions behind Keystone:
// push-registry runs a registry on each region's container; each region's
// node registries (separate processes on the same container) serve the
// image by digest; the result has the node repository; nothing is left
// running; a rerun uploads nothing.
func TestStorageRegions(t *testing.T) {
	k := testKeystone(t)
	nodeA, nodeB := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B_NODE")
	img := pushtest.RandomImage(t, 2, 1500<<10) // layers of two Swift segments
	digest := pushtest.Digest(t, img)
	repo := pushtest.UniqueRepo(t)
	regions := []Region{k.region("a"), k.region("b")}
	regions[1].NodeRegistry = "registry.b.internal:5000"
	o := k.storageOpts(t, regions, img, repo, "v1")
	res, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	mustBeClean(t, o.StateDir)
	for i, want := range []string{"localhost:5000/" + repo, "registry.b.internal:5000/" + repo} {
		rp := res.Images[0].Regions[i]
		if rp.NodeRepository != want || !strings.HasPrefix(rp.Repository, "127.0.0.1:") || !rp.Verified || rp.Digest != digest {
			t.Errorf("region %s: %+v, want node repository %s", rp.Region, rp, want)
		}
	}
	// Every node registry on the region's container serves it by digest.
	for _, node := range []string{nodeA, nodeB} {
		if got := skopeoDigest(t, node+"/"+repo+"@"+digest); got != digest {
			t.Errorf("node registry %s serves %s, want %s", node, got, digest)
		}
		if got := pushtest.TagDigest(t, node, repo, "v1"); got != digest {
			t.Errorf("node registry %s: tag v1 = %q, want %s", node, got, digest)
		}
	}
	// A rerun reads what is there back and uploads nothing.
	res, err = run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, rp := range res.Images[0].Regions {
		if rp.BytesUploaded != 0 || rp.BlobsPresent != 3 {
			t.Errorf("rerun, region %s: uploaded %d bytes, %d blobs present; want 0 and 3", rp.Region, rp.BytesUploaded, rp.BlobsPresent)
		}
	}
	mustBeClean(t, o.StateDir)
}

// TestStorageDeepVerifyRepair damages two blobs at rest in each kind of
// region (one zero bytes, one with its size kept): verify --deep names
// both; a storage-backed region is repaired by verify --deep --repair and
// by a rerun of push; a registry region's error says what to remove, and
// no tag moves while it is broken. Plain verify (HEAD) sees only the
// zero-byte one.
func TestStorageDeepVerifyRepair(t *testing.T) {
	k := testKeystone(t)
	ciA := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A") // a registry region on container a
	img := pushtest.RandomImage(t, 2, 1500<<10)
	layers, _ := img.Layers()
	l0, _ := layers[0].Digest()
	l1, _ := layers[1].Digest()
	repo := pushtest.UniqueRepo(t)

	for _, tc := range []struct {
		name    string
		regions []Region
		storage bool
	}{
		{"storage-backed", []Region{k.region("a"), k.region("b")}, true},
		{"registry", []Region{{Name: "a", Registry: ciA}, k.region("b")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := repo + "-" + tc.name
			o := k.storageOpts(t, tc.regions, img, repo, "v1")
			res, err := run(t, o)
			if err != nil {
				t.Fatal(err)
			}
			resultFile := filepath.Join(t.TempDir(), "push.json")
			if err := result.WriteFile(resultFile, res, 0o644); err != nil {
				t.Fatal(err)
			}
			vo := VerifyOptions{ResultFile: resultFile, Regions: tc.regions, Auth: k.auth(), Conn: Conn{Retry: fastRetry(), StateDir: o.StateDir, RegistryBinary: o.RegistryBinary}}
			verify := func(deep, repair bool) error {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				v := vo
				v.Deep, v.Repair = deep, repair
				return Verify(ctx, v)
			}
			if err := verify(true, false); err != nil {
				t.Fatalf("deep verify of a good push: %v", err)
			}
			st := k.store(t, "a")
			zeroBlob(t, st, l0)
			corruptBlob(t, st, l1)

			err = verify(false, false)
			if err == nil {
				t.Fatal("verify (HEAD) passed with a zero-byte blob")
			}
			pushtest.MustContain(t, err.Error(), "region a", l0.String(), "0 bytes")
			if strings.Contains(err.Error(), l1.String()) {
				t.Errorf("verify (HEAD) read the corrupted blob's content: %v", err)
			}
			err = verify(true, false)
			if err == nil {
				t.Fatal("deep verify passed with damaged blobs")
			}
			for _, want := range []string{
				"region a: repository " + repo + ": registry content does not match: blob " + l0.String() + ": it reads back as 0 bytes, want " + strconv.FormatInt(layerSize(t, layers[0]), 10),
				"region a: repository " + repo + ": registry content does not match: blob " + l1.String() + ": its " + strconv.FormatInt(layerSize(t, layers[1]), 10) + " bytes hash to sha256:",
			} {
				pushtest.MustContain(t, err.Error(), want)
			}
			if !errors.Is(err, ErrMismatch) || usererr.Is(err) {
				t.Errorf("deep verify error is not a mismatch (or is bad input): %v", err)
			}

			if !tc.storage {
				err = verify(true, true)
				pushtest.MustContain(t, errString(err), "nothing was repaired", "remove docker/registry/v2/blobs/sha256/"+l0.Hex[:2]+"/"+l0.Hex+"/", "region a's registry storage")
				o.Tags = []string{"v2"}
				_, err = run(t, o)
				pushtest.MustContain(t, errString(err), "region a", l0.String(), "remove docker/registry/v2/blobs/", "no tag was moved")
				for _, host := range []string{ciA, testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B_NODE")} {
					if got := pushtest.TagDigest(t, host, repo, "v2"); got != "" {
						t.Errorf("%s got tag v2 while region a is damaged", host)
					}
				}
				// The operator removes them; a rerun pushes them again.
				for _, d := range []v1.Hash{l0, l1} {
					if err := st.deleteBlob(context.Background(), d); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := run(t, o); err != nil {
					t.Fatal(err)
				}
				if err := verify(true, false); err != nil {
					t.Fatalf("deep verify after the operator's fix: %v", err)
				}
				return
			}
			if err := verify(true, true); err != nil {
				t.Fatalf("verify --deep --repair: %v", err)
			}
			if err := verify(true, false); err != nil {
				t.Fatalf("deep verify after the repair: %v", err)
			}
			// Damage again; a rerun of push repairs it before moving v2.
			zeroBlob(t, st, l1)
			corruptBlob(t, st, l0)
			o.Tags = []string{"v2"}
			res, err = run(t, o)
			if err != nil {
				t.Fatalf("push over damaged blobs: %v", err)
			}
			if a := res.Images[0].Regions[0]; a.BlobsUploaded != 2 || a.BytesUploaded != layerSize(t, layers[0])+layerSize(t, layers[1]) {
				t.Errorf("push repaired %d blobs (%d bytes), want the two damaged layers", a.BlobsUploaded, a.BytesUploaded)
			}
			if b := res.Images[0].Regions[1]; b.BytesUploaded != 0 {
				t.Errorf("region b re-uploaded %d bytes", b.BytesUploaded)
			}
			if err := verify(true, false); err != nil {
				t.Fatalf("deep verify after push repaired: %v", err)
			}
			// A full pull by an independent client checks every digest.
			skopeoCopy(t, ciA+"/"+repo+"@"+res.Images[0].Digest)
			mustBeClean(t, o.StateDir)
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestStorageFrozen stops (SIGSTOP) region b's registry in the middle of a
// push: the push fails within the request and stall timeouts times the
// attempts (not the job's timeout), names region b, moves no tag anywhere,
// and leaves no registry running; a rerun completes.
func TestStorageFrozen(t *testing.T) {
	k := testKeystone(t)
	nodeA, nodeB := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B_NODE")
	img := pushtest.RandomImage(t, 3, 2<<20)
	repo := pushtest.UniqueRepo(t)
	o := k.storageOpts(t, []Region{k.region("a"), k.region("b")}, img, repo, "v1")
	o.RequestTimeout, o.StallTimeout, o.Attempts, o.Jobs = 5*time.Second, 5*time.Second, 2, 1
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	frozen := make(chan int, 1)
	go func() {
		// Freeze region b's registry once it is up (its config is gone).
		for ctx.Err() == nil {
			if pids, _ := filepath.Glob(filepath.Join(o.StateDir, "reg-b-*", "pid")); len(pids) == 1 {
				if _, err := os.Stat(filepath.Join(filepath.Dir(pids[0]), "config.yml")); os.IsNotExist(err) {
					raw, _ := os.ReadFile(pids[0])
					pid, _ := strconv.Atoi(string(raw))
					time.Sleep(300 * time.Millisecond) // into the first blobs
					syscall.Kill(pid, syscall.SIGSTOP)
					frozen <- pid
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	_, err := Run(ctx, o)
	elapsed := time.Since(start)
	var pid int
	select {
	case pid = <-frozen:
	default:
		t.Fatalf("the registry of region b was never frozen (err %v)", err)
	}
	if err == nil {
		t.Fatal("push to a frozen region succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("push held on until the job's timeout: %v", err)
	}
	// Generous: requests and uploads time out at 5s, 2 tries each, a few
	// in a row; without the deadlines this hangs until ctx (3 minutes).
	if elapsed > 90*time.Second {
		t.Errorf("push failed after %s, want about the request timeout x attempts", elapsed)
	}
	pushtest.MustContain(t, err.Error(), "region b", "no tag was moved in any region", "rerun")
	for _, node := range []string{nodeA, nodeB} {
		if got := pushtest.TagDigest(t, node, repo, "v1"); got != "" {
			t.Errorf("%s got tag v1 from a push that failed", node)
		}
	}
	t.Logf("failed after %s: %v", elapsed, err)
	syscall.Kill(pid, syscall.SIGCONT)
	mustBeClean(t, o.StateDir)
	o.RequestTimeout, o.StallTimeout, o.Attempts = 0, 60*time.Second, 0
	if _, err := run(t, o); err != nil {
		t.Fatalf("rerun after the freeze: %v", err)
	}
	if got := pushtest.TagDigest(t, nodeB, repo, "v1"); got != pushtest.Digest(t, img) {
		t.Errorf("after the rerun, region b's tag v1 = %q", got)
	}
}

// TestStorageBadLogin: a wrong Keystone password stops the run before
// anything is pushed, names the region, and never shows the password.
func TestStorageBadLogin(t *testing.T) {
	k := testKeystone(t)
	img := pushtest.RandomImage(t, 1, 1000)
	k.password += "-wrong"
	o := k.storageOpts(t, []Region{k.region("a"), k.region("b")}, img, pushtest.UniqueRepo(t), "v1")
	o.StartTimeout = 20 * time.Second
	_, err := run(t, o)
	if err == nil {
		t.Fatal("push with a wrong Keystone password succeeded")
	}
	pushtest.MustContain(t, err.Error(), "region a", "starting a registry on its Swift storage", "nothing was pushed")
	if strings.Contains(err.Error(), k.password) {
		t.Errorf("the error shows the password: %v", err)
	}
	mustBeClean(t, o.StateDir)
}

// TestSweepRegistries: a registry whose run is gone (its lock is free) is
// stopped and its directory removed; one whose run holds its lock is left
// alone.
func TestSweepRegistries(t *testing.T) {
	bin := testenv.Tool(t, "docker-registry")
	state := t.TempDir()
	start := func(name string, hold bool) (*os.File, int) {
		dir := filepath.Join(state, "reg-"+name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		port, _ := freePort()
		cfg := "version: 0.1\nlog: {level: error}\nstorage: {inmemory: {}}\nhttp: {addr: 127.0.0.1:" + strconv.Itoa(port) + "}\n"
		os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600)
		lock, err := os.Create(filepath.Join(dir, "lock"))
		if err != nil {
			t.Fatal(err)
		}
		if hold {
			syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
		}
		p, err := os.StartProcess(bin, []string{bin, "serve", filepath.Join(dir, "config.yml")}, &os.ProcAttr{Dir: dir, Sys: &syscall.SysProcAttr{Setpgid: true}})
		if err != nil {
			t.Fatal(err)
		}
		go p.Wait()
		t.Cleanup(func() { p.Kill() })
		os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(p.Pid)), 0o600)
		return lock, p.Pid
	}
	_, gone := start("gone", false)
	held, alive := start("alive", true)
	defer held.Close()
	sweepRegistries(state, logging.Discard())
	if !runlock.Exited(gone) {
		t.Errorf("the registry of a gone run (pid %d) still runs", gone)
	}
	if _, err := os.Stat(filepath.Join(state, "reg-gone")); !os.IsNotExist(err) {
		t.Errorf("the state of a gone run was not removed: %v", err)
	}
	if runlock.Exited(alive) {
		t.Errorf("the registry of a live run (pid %d) was stopped", alive)
	}
	if _, err := os.Stat(filepath.Join(state, "reg-alive", "pid")); err != nil {
		t.Errorf("the state of a live run was removed: %v", err)
	}
}

// skopeoCopy pulls ref in full with skopeo, which checks every digest.
func skopeoCopy(t *testing.T, ref string) {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "skopeo"), "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+t.TempDir()+":x")
	cmd.Env = append(cmd.Environ(), "TMPDIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %s: %v: %s", ref, err, out)
	}
}
