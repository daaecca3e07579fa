// Package testenv gives tests the real servers started by hack/testenv.sh.
// Locally a test whose server is not running is skipped; with
// SLIPWAY_TEST_STRICT=1 (set by hack/test.sh, so always in CI) it fails, so a
// missing server can never hide behind a skip.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing servers fail tests instead of skipping them.
func Strict() bool { return os.Getenv("SLIPWAY_TEST_STRICT") == "1" }

// Require returns the value of each named environment variable (one
// SLIPWAY_TEST_* variable per server endpoint or credential), in order.
func Require(t testing.TB, names ...string) []string {
	t.Helper()
	vals := make([]string, len(names))
	for i, n := range names {
		v := os.Getenv(n)
		if v == "" {
			missing(t, "%s is not set: start the test servers with hack/testenv.sh (or run hack/test.sh)", n)
		}
		vals[i] = v
	}
	return vals
}

// Get is Require for one variable.
func Get(t testing.TB, name string) string {
	t.Helper()
	return Require(t, name)[0]
}

// Tool returns the path of an executable the test needs (buildah, skopeo,
// mariadb-dump...), failing or skipping like Require when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found on PATH: install it with hack/install-deps.sh", name)
	}
	return p
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
