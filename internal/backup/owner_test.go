package backup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDeadHere tells a killed create of this host from a live one, from
// another host's, and from a pid reused by another process.
func TestDeadHere(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	host, _ := os.Hostname()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid // exited and reaped
	self := beat(now)
	for _, tc := range []struct {
		name, hb string
		dead     bool
	}{
		{"this process", self, false},
		{"a gone process of this host", now.Format(time.RFC3339) + "\nhost=" + host + " pid=" + strconv.Itoa(gone) + " start=123\n", true},
		{"this pid with another start time (reused)", strings.Replace(self, "start="+procStart(os.Getpid()), "start=1", 1), true},
		{"another host", now.Format(time.RFC3339) + "\nhost=" + host + "-other pid=" + strconv.Itoa(gone) + " start=123\n", false},
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
