package secrets

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSamplerFindsSecrets runs real processes that hold a secret one way
// each, and checks what the sampler reports: argv always, environ only in
// a job's processes (marked, or a descendant of one, even after its
// environment was replaced), nothing for a secret it must skip.
func TestSamplerFindsSecrets(t *testing.T) {
	const marker = "SLIPWAY_SAMPLER_TEST_JOB="
	secret := "s3cr3t-" + strings.Repeat("x", 12) + "-" + time.Now().Format("150405.000000")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// argv and env start the process; env is added to a clean one.
		argv, env []string
		known     Known
		want      []string // Where of each hit, with Job
		skipped   []string
	}{
		{"argv of any process", []string{"bash", "-c", "sleep 5; true", "leak", secret}, nil,
			Known{Secrets: []Secret{{"s", secret}}}, []string{"argv outside"}, nil},
		{"environ of a job process", []string{"bash", "-c", "exec sleep 5"}, []string{marker + "1", "TOKEN=" + secret},
			Known{Secrets: []Secret{{"s", secret}}}, []string{"environ TOKEN job"}, nil},
		// The secret is read from a file, so it is in no argv: only the
		// child's ancestry tells that it belongs to the job.
		{"environ of a job's child without the marker", []string{"bash", "-c",
			`read -r v < "$1"; (unset SLIPWAY_SAMPLER_TEST_JOB; export PW="$v"; exec sleep 5); true`, "x", secretFile},
			[]string{marker + "1"}, Known{Secrets: []Secret{{"s", secret}}}, []string{"environ PW job"}, nil},
		{"environ of a process outside the jobs", []string{"bash", "-c", "sleep 5; true"}, []string{"TOKEN=" + secret},
			Known{Secrets: []Secret{{"s", secret}}}, nil, nil},
		{"a secret that is also a public value", []string{"bash", "-c", "sleep 5; true", "bucket", secret}, nil,
			Known{Secrets: []Secret{{"s", secret}}, Public: []Secret{{"bucket", "s3://" + secret}}}, nil, []string{"s: also the public value bucket"}},
		{"a short secret", []string{"bash", "-c", "sleep 5; true", "root"}, nil,
			Known{Secrets: []Secret{{"user", "root"}}}, nil, []string{"user: shorter than 8 characters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(tt.known, Options{JobMarker: marker})
			cmd := exec.Command(tt.argv[0], tt.argv[1:]...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The whole group: no sleep may outlive its case.
			defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
			// Stop sweeps once more, with the process (sleeping 5 s) still
			// there; the pause lets its child start.
			time.Sleep(500 * time.Millisecond)
			rep := s.Stop()
			var got []string
			for _, h := range rep.Hits {
				if strings.Contains(h.Argv, secret) {
					t.Errorf("the report shows the secret: %s", h)
				}
				owner := "outside"
				if h.Job {
					owner = "job"
				}
				got = append(got, h.Where+" "+owner)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("hits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.skipped, rep.Skipped); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
			if rep.Sweeps < 2 || rep.Processes == 0 {
				t.Errorf("sampler did not sample: %s", rep.Summary())
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name  string
		stat  string
		ppid  int
		start uint64
		ok    bool
	}{
		{"plain", "42 (sleep) S 7 42 42 0 -1 4194304 97 0 0 0 0 0 0 0 20 0 1 0 123456 5000 100", 7, 123456, true},
		{"name with spaces and parens", "42 (a (b) c) S 9 42 42 0 -1 4194304 97 0 0 0 0 0 0 0 20 0 1 0 99 5000 100", 9, 99, true},
		{"truncated", "42 (sleep) S 7 42", 0, 0, false},
		{"no name", "garbage", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ppid, start, ok := parseStat([]byte(tt.stat))
			if ppid != tt.ppid || start != tt.start || ok != tt.ok {
				t.Errorf("parseStat = %d, %d, %v; want %d, %d, %v", ppid, start, ok, tt.ppid, tt.start, tt.ok)
			}
		})
	}
}
