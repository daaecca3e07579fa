package secrets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/test/zuulconfig"
)

// TestLeakingPlaybookIsCaught runs the jobs of testdata/leak through the
// local Zuul runner while sampling: the job that hands its secret to a
// command through Ansible's `environment:` is caught (on the module shell's
// command line and in the command's environment), the job that uses a
// 0600 file is not. The test process carries the same secret in its own
// environment, as the test runner carries SLIPWAY_TEST_*: the runner gives
// jobs a clean environment, so that copy reaches no job process and is not
// reported.
func TestLeakingPlaybookIsCaught(t *testing.T) {
	testenv.Tool(t, "ansible-playbook")
	root, err := filepath.Abs(filepath.Join("testdata", "leak"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := zuulconfig.LoadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "leak-" + hex.EncodeToString(b[:])
	t.Setenv("SLIPWAY_LEAK_TOKEN", token)

	// The static check catches the same playbook before it runs.
	err = zuulconfig.CheckSecretEnvironment(root, cfg)
	if err == nil || !strings.Contains(err.Error(), "playbooks/environment.yaml:") || strings.Contains(err.Error(), "playbooks/file.yaml") {
		t.Errorf("static check: want playbooks/environment.yaml only, got %v", err)
	}

	tests := []struct {
		job string
		// want are the places the sampler must report, by Where.
		want []string
	}{
		{"leak-environment", []string{"argv", "environ LEAK_TOKEN"}},
		{"leak-file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.job, func(t *testing.T) {
			state := t.TempDir()
			r := &zuulconfig.Runner{
				Root: root, StateDir: state, Config: cfg, Project: cfg.Projects[0],
				Pipeline: "post", Branch: "main", Only: []string{tt.job},
				Zuul:     map[string]any{"project": map[string]any{"name": "leak"}},
				Secrets:  map[string]map[string]any{"leak-token": {"user": "leaker", "token": token}},
				SiteVars: map[string]any{}, ExtraVars: map[string]any{},
			}
			s := Start(Known{Secrets: []Secret{{"leak-token.token", token}}}, Options{JobMarker: "ZUUL_JOBDIR=" + state + "/jobs/"})
			_, runErr := r.Run(context.Background())
			rep := s.Stop()
			t.Log(rep.Summary())
			if runErr != nil {
				out, _ := os.ReadFile(filepath.Join(state, "jobs", tt.job, "logs", "job-output.txt"))
				t.Fatalf("job %s: %v\n%s", tt.job, runErr, out)
			}
			if rep.JobProcesses == 0 {
				t.Fatal("the sampler saw no process of the job")
			}
			got := map[string]bool{}
			for _, h := range rep.Hits {
				t.Logf("hit: %s", h)
				got[h.Where] = true
				if !h.Job {
					t.Errorf("hit outside the job: %s", h)
				}
				if strings.Contains(h.Argv, token) {
					t.Errorf("the report shows the secret: %s", h.Argv)
				}
			}
			for _, w := range tt.want {
				if !got[w] {
					t.Errorf("the sampler did not find the secret in the %s of a job process", w)
				}
				delete(got, w)
			}
			for w := range got {
				t.Errorf("unexpected hit in the %s of a process", w)
			}
			// Nothing the job left behind holds the token: its log says
			// "censored" where the file was written.
			hits, err := ScanTree(state, rep.Secrets, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hits {
				t.Errorf("job left %s", h)
			}
		})
	}
}
