package testenv

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayci/slipway/internal/runlock"
)

// TestScriptsStartAndStop runs hack/testenv.sh itself: the servers it starts
// answer on the ports it exports, and `down` leaves no process and no port.
func TestScriptsStartAndStop(t *testing.T) {
	Tool(t, "docker-registry")
	Tool(t, "memcached")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(root, "hack", "testenv.sh")
	down := func() {
		if out, err := exec.Command(script, "down", dir).CombinedOutput(); err != nil {
			t.Errorf("testenv.sh down: %v\n%s", err, out)
		}
	}
	t.Cleanup(down)
	if out, err := exec.Command(script, "up", dir, "openstack", "swift", "registries").CombinedOutput(); err != nil {
		t.Fatalf("testenv.sh up: %v\n%s", err, out)
	}
	env := readEnv(t, filepath.Join(dir, "env"))
	var pids []int
	matches, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	for _, m := range matches {
		b, _ := os.ReadFile(m)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		pids = append(pids, pid)
	}
	if len(pids) < 10 { // the emulator, memcached, 4 swift servers, 4 registries
		t.Fatalf("only %d processes recorded: %v", len(pids), matches)
	}
	var addrs []string
	for _, v := range []string{"SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_B", "SLIPWAY_TEST_REGISTRY_B_NODE", "SLIPWAY_TEST_REGISTRY_BUILDSET"} {
		addr := env[v]
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("%s = %q, want a 127.0.0.1 address", v, addr)
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s /v2/ = %d", v, resp.StatusCode)
		}
		addrs = append(addrs, addr)
	}
	if len(unique(addrs)) != len(addrs) {
		t.Errorf("ports collide: %v", addrs)
	}
	resp, err := http.Get(env["SLIPWAY_TEST_SWIFT_URL"] + "/healthcheck")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	down()
	for _, pid := range pids {
		// The scripts' processes are reparented to PID 1, which here may
		// not reap them: a zombie counts as stopped.
		if !runlock.Exited(pid) {
			t.Errorf("process %d still running after down", pid)
		}
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after down", a)
		}
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimPrefix(s.Text(), "export ")
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

func unique(s []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}
