package secrets

import (
	"os/exec"
	"testing"
	"time"
)

// BenchmarkSweep measures one sweep of /proc (every process's cmdline,
// stat and environ) and, as the baseline measured in the same run, one
// `ps -eo args` (what the issue sampled with, every 0.15 s): the ratio is
// how many sweeps fit in the time of one ps.
func BenchmarkSweep(b *testing.B) {
	ps, err := exec.LookPath("ps")
	if err != nil {
		b.Fatal(err)
	}
	const baselineRuns = 20
	start := time.Now()
	for range baselineRuns {
		if err := exec.Command(ps, "-eo", "args").Run(); err != nil {
			b.Fatal(err)
		}
	}
	baseline := time.Since(start) / baselineRuns
	s := newSampler(Known{Secrets: []Secret{{"bench", "0123456789abcdef0123"}}}, Options{JobMarker: "ZUUL_JOBDIR=/nonexistent/"})
	b.ResetTimer()
	for b.Loop() {
		s.sweep()
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(time.Second)/float64(per), "sweeps/s")
	b.ReportMetric(float64(baseline)/float64(per), "sweeps/ps-run")
	b.Logf("one sweep %s, one ps -eo args %s, %d processes", per, baseline, len(s.seen))
}
