package realnode

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayci/slipway/internal/testenv"
)

// hostPaths are fixed paths containerd, runc, CNI and the kubelet write by
// default; the node keeps them in its own mount namespace or under the env
// dir, so none may appear on the host.
var hostPaths = []string{"/run/containerd", "/var/lib/containerd", "/opt/containerd", "/var/lib/kubelet",
	"/var/log/pods", "/var/log/containers", "/etc/cni", "/var/lib/cni", "/run/netns",
	"/usr/libexec/kubernetes"}

// hostSettings are kernel settings the kubelet or the CNI bridge would
// change on a node; the test node must leave them alone.
var hostSettings = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward"}

// TestDownLeavesNothing starts a private env with both regions' nodes
// (node-a0 and node-b0 on one machine), runs a container on each, stops the
// env with `hack/testenv.sh down` and checks that no process, container,
// cgroup, mount, network device or listening port of it is left, and that
// the host's fixed paths, kernel settings and iptables never changed.
func TestDownLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"containerd", "runc", "docker-registry", "memcached", "unshare", "ip"} {
		testenv.Tool(t, tool)
	}
	if os.Getuid() != 0 {
		if testenv.Strict() {
			t.Fatal("the test node needs root")
		}
		t.Skip("the test node needs root")
	}
	script := filepath.Join(testenv.RepoRoot(), "hack", "testenv.sh")
	dir := t.TempDir()
	before := hostState(t)
	downDone := false
	down := func() {
		downDone = true
		if out, err := exec.Command(script, "down", dir).CombinedOutput(); err != nil {
			t.Errorf("testenv.sh down: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		if !downDone {
			down()
		}
	})
	start := time.Now()
	if out, err := exec.Command(script, "up", dir, "kube", "kube-b", "openstack", "swift", "registries", "baseimages", "node", "node-b").CombinedOutput(); err != nil {
		t.Fatalf("testenv.sh up: %v\n%s", err, out)
	}
	t.Logf("private env with two nodes up in %s", time.Since(start).Round(100*time.Millisecond))
	env := readEnv(t, filepath.Join(dir, "env"))
	type nodeState struct{ name, bridge, cgroup, mntns, ip string }
	var nodes []nodeState
	for _, c := range []nodeEnv{nodeA, nodeB} {
		st := readEnv(t, filepath.Join(dir, c.State, "state"))
		ns := nodeState{name: env[c.Prefix], bridge: st["bridge"], cgroup: st["cgroup"], mntns: strings.Trim(st["mntns"], "'"), ip: env[c.Prefix+"_IP"]}
		if ns.bridge == "" || ns.cgroup == "" || ns.mntns == "" || ns.ip == "" {
			t.Fatalf("%s: state %v or %s_IP lacks bridge, cgroup, mntns or IP", c.State, st, c.Prefix)
		}
		nodes = append(nodes, ns)

		// A container on the node: the pause image, from the node registry.
		n := &node{Kubeconfig: env[c.Kubeconfig], Kubectl: env["SLIPWAY_TEST_KUBECTL"]}
		pod := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": "default"},
	  "spec": {"nodeSelector": {"kubernetes.io/hostname": "` + env[c.Prefix] + `"},
	    "tolerations": [{"key": "` + env[c.Prefix+"_TAINT"] + `", "operator": "Exists"}],
	    "containers": [{"name": "sleeper", "image": "` + env[c.Prefix+"_REGISTRY_NAME"] + `/slipway/pause:1"}]}}`
		apply(t, n, "pod.json", pod)
		if out, err := kubectl(t, n, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=90s"); err != nil {
			t.Fatalf("pod sleeper on %s not ready: %v\n%s", ns.name, err, out)
		}
	}
	// Two nodes on one machine share nothing.
	a, b := nodes[0], nodes[1]
	if a.bridge == b.bridge || a.cgroup == b.cgroup || a.mntns == b.mntns || a.ip == b.ip {
		t.Errorf("the nodes share a bridge, cgroup, mount namespace or address: %+v, %+v", a, b)
	}
	if _, an, _ := net.ParseCIDR(a.ip + "/24"); an.Contains(net.ParseIP(b.ip)) {
		t.Errorf("the nodes' pod subnets overlap: %s, %s", a.ip, b.ip)
	}

	// What the env runs now.
	pids := envPIDs(t, dir)
	var nodePIDs []int
	var links []string
	for _, ns := range nodes {
		p := nsAndCgroupPIDs(ns.mntns, ns.cgroup)
		if len(p) < 4 {
			t.Errorf("only %d processes in %s's namespace and cgroups (want containerd, kubelet, shim, containers)", len(p), ns.name)
		}
		nodePIDs = append(nodePIDs, p...)
		veths := linksOf(t, ns.bridge)
		if len(veths) == 0 {
			t.Errorf("no pod veth on %s's bridge %s", ns.name, ns.bridge)
		}
		links = append(append(links, veths...), ns.bridge)
	}
	ports, _ := filepath.Glob(filepath.Join(dir, "ports", "*"))
	if during := hostState(t); during != before {
		t.Errorf("the host changed while the node ran:\nbefore: %s\nduring: %s", before, during)
	}

	down()

	for _, p := range append(pids, nodePIDs...) {
		if alive(p) {
			t.Errorf("process %d (%s) still runs after down", p, cmdline(p))
		}
	}
	for _, ns := range nodes {
		if left := nsAndCgroupPIDs(ns.mntns, ns.cgroup); len(left) > 0 {
			t.Errorf("processes left in %s's namespace or cgroups: %v", ns.name, left)
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns.cgroup); len(left) > 0 {
			t.Errorf("cgroups of %s left: %v", ns.name, left)
		}
	}
	for _, l := range links {
		if err := exec.Command("ip", "link", "show", l).Run(); err == nil {
			t.Errorf("network device %s left", l)
		}
	}
	if m := mountsUnder(t, dir); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", dir, m)
	}
	for _, p := range ports {
		addr := "127.0.0.1:" + filepath.Base(p)
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after down", addr)
		}
	}
	if p := processesNaming(dir); len(p) > 0 {
		t.Errorf("processes naming %s left: %v", dir, p)
	}
	if after := hostState(t); after != before {
		t.Errorf("the host changed:\nbefore: %s\nafter:  %s", before, after)
	}
}

// hostState describes the host's fixed paths the node must not create, its
// kernel settings and its iptables KUBE- chains.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			b.WriteString(p + " exists; ")
		}
	}
	for _, s := range hostSettings {
		v, err := os.ReadFile("/proc/sys/" + s)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(s + "=" + strings.TrimSpace(string(v)) + "; ")
	}
	for _, save := range []string{"iptables-save", "iptables-legacy-save"} {
		if out, err := exec.Command(save).Output(); err == nil {
			b.WriteString(save + " KUBE- lines: " + strconv.Itoa(bytes.Count(out, []byte("KUBE-"))) + "; ")
		}
	}
	return b.String()
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		line := strings.TrimPrefix(s.Text(), "export ")
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// envPIDs are the processes testenv.sh recorded for dir.
func envPIDs(t *testing.T, dir string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		pids = append(pids, p)
	}
	return pids
}

// nsAndCgroupPIDs are the live processes in mount namespace mntns or in the
// pids cgroup tree named cgroup.
func nsAndCgroupPIDs(mntns, cgroup string) []int {
	seen := map[int]bool{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if ns, _ := os.Readlink(p + "/ns/mnt"); ns == mntns {
			pid, _ := strconv.Atoi(filepath.Base(p))
			seen[pid] = true
		}
	}
	_ = filepath.WalkDir("/sys/fs/cgroup/pids/"+cgroup, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "cgroup.procs" {
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				seen[pid] = true
			}
		}
		return nil
	})
	var pids []int
	for p := range seen {
		if alive(p) {
			pids = append(pids, p)
		}
	}
	return pids
}

// alive reports whether pid runs; a zombie nobody reaped (PID 1 here may
// not reap) does not count.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// linksOf lists the network devices attached to bridge.
func linksOf(t *testing.T, bridge string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "master", bridge).Output()
	if err != nil {
		t.Fatalf("ip link show master %s: %v", bridge, err)
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			links = append(links, name)
		}
	}
	return links
}

// mountsUnder lists the host's mount points under dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var m []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			m = append(m, f[4])
		}
	}
	return m
}

// processesNaming lists live processes whose command line names dir.
func processesNaming(dir string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if pid == os.Getpid() || !alive(pid) {
			continue
		}
		if c := cmdline(pid); strings.Contains(c, dir) {
			found = append(found, strconv.Itoa(pid)+" "+c)
		}
	}
	return found
}
