package backup

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDeadHere tells a killed create of this host from a live one, from
// another host's, from another PID namespace's with the same hostname (a
// hostNetwork pod), and from a pid reused by another process.
func TestDeadHere(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	host, _ := os.Hostname()
	ns := pidNS()
	if !strings.HasPrefix(ns, "pid:[") {
		t.Fatalf("pidNS() = %q, want pid:[inode]", ns)
	}
	gone := gonePID(t)
	owner := func(host, ns string) string { return beatOf(now, host, gone, "123", ns) }
	self := beat(now)
	if !strings.Contains(self, " pidns="+ns+"\n") {
		t.Fatalf("beat %q does not name the PID namespace %s", self, ns)
	}
	for _, tc := range []struct {
		name, hb string
		dead     bool
	}{
		{"this process", self, false},
		{"a gone process of this host and namespace", owner(host, ns), true},
		{"this pid with another start time (reused)", strings.Replace(self, "start="+procStart(os.Getpid()), "start=1", 1), true},
		{"another host", owner(host+"-other", ns), false},
		{"another PID namespace with this hostname (hostNetwork pod)", owner(host, "pid:[1]"), false},
		{"no PID namespace named (an older create)", strings.Replace(owner(host, ns), " pidns="+ns, "", 1), false},
		{"an old heartbeat with only a time", now.Format(time.RFC3339), false},
		{"garbage", "x\ny", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := deadHere(tc.hb); got != tc.dead {
				t.Errorf("deadHere(%q) = %t, want %t", tc.hb, got, tc.dead)
			}
		})
	}
}

// gonePID returns the pid of a process that ran here and is reaped.
func gonePID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestSweepKeepsOtherPIDNamespace: a fresh heartbeat naming this hostname
// and a pid that is gone HERE, but another PID namespace (a create running
// in another hostNetwork pod on this node), is not swept; the same
// heartbeat of this namespace is (the killed run of this host).
func TestSweepKeepsOtherPIDNamespace(t *testing.T) {
	cfg, store := s3Env(t)
	ctx := context.Background()
	host, _ := os.Hostname()
	gone := gonePID(t)
	for _, tc := range []struct {
		name, ns string
		swept    bool
	}{
		{"other namespace", "pid:[1]", false},
		{"this namespace", pidNS(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := cfg.Prefix + "sweep-" + randHex(3) + "/"
			id := NewID(time.Now().UTC())
			hb := beatOf(time.Now(), host, gone, "123", tc.ns)
			putAll(t, store, prefix+id+"/"+heartbeatName, []byte(hb))
			putAll(t, store, prefix+id+"/mysql-app.sql.zst", []byte("partial"))
			// The heartbeat is fresh: only its owner can make it dead.
			if err := sweepDead(ctx, store, prefix, time.Now().Add(-time.Hour), testLogger(t)); err != nil {
				t.Fatal(err)
			}
			objs, err := store.List(ctx, prefix+id+"/")
			if err != nil {
				t.Fatal(err)
			}
			if swept := len(objs) == 0; swept != tc.swept {
				t.Errorf("heartbeat of %s: swept %t, want %t (%d objects left)", tc.ns, swept, tc.swept, len(objs))
			}
			discard(ctx, store, prefix)
		})
	}
}
