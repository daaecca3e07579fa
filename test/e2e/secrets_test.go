package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/test/secrets"
)

// sampleSecrets samples the process list while one hack/pipeline.sh run
// goes (package secrets) and returns the check to call when it ends: no
// known secret in the argv of any process, nor in the environment of a
// job's processes, nor in any file the run leaves in its state directory
// (job logs, results, work directories; but secrets.yaml, the local
// stand-in for Zuul's encrypted secrets).
//
// The known secrets are the test servers' (SLIPWAY_TEST_* and the files
// they name), the pipeline's local secret values as zuul.d/secrets.yaml
// declares them, and the client key of every kubeconfig a job fetches.
// This test process, pipeline.sh and zuul-local carry SLIPWAY_TEST_* in
// their environment, so environments are checked only for the job's
// processes: those the local runner starts (ZUUL_JOBDIR under the state
// directory, in an executor's clean environment that holds no caller
// variable) and their descendants. Argv is checked for every process.
func sampleSecrets(t *testing.T, state string) func() {
	t.Helper()
	known, err := secrets.FromEnv(os.Environ())
	if err != nil {
		t.Fatalf("reading the test servers' secrets: %v", err)
	}
	s := secrets.Start(known, secrets.Options{
		JobMarker: "ZUUL_JOBDIR=" + filepath.Join(state, "jobs") + string(filepath.Separator),
		Sources: []secrets.Source{
			secrets.Pipeline(testenv.RepoRoot(), state),
			secrets.Files(filepath.Join(state, "work", "*", "private", "kubeconfig"), secrets.Kubeconfig),
		},
	})
	return func() {
		t.Helper()
		rep := s.Stop()
		t.Logf("secret sampler: %s", rep.Summary())
		for _, s := range rep.Skipped {
			t.Logf("secret sampler: not looked for: %s", s)
		}
		for _, err := range rep.SourceErrors {
			t.Errorf("secret sampler: %v", err)
		}
		if rep.JobProcesses == 0 {
			t.Error("secret sampler: saw no process of a job")
		}
		for _, h := range rep.Hits {
			t.Errorf("process list: %s", h)
		}
		hits, err := secrets.ScanTree(state, rep.Secrets, func(rel string) bool { return rel == "secrets.yaml" })
		if err != nil {
			t.Errorf("scanning %s for secrets: %v", state, err)
		}
		for _, h := range hits {
			t.Errorf("pipeline state: %s", h)
		}
	}
}
