// Package magnumtest gives each magnum-cluster test its own user and
// project on the shared OpenStack emulator, and the spec the tests edit.
package magnumtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/openstackemu"
	"github.com/slipwayci/slipway/internal/osauth"
	"github.com/slipwayci/slipway/internal/testenv"
)

// Env is one test's own user and project, so its clusters and injected
// faults do not meet other tests'.
type Env struct {
	T     *testing.T
	Admin openstackemu.Admin
	// Project is also the user's name.
	Project string
	// Password is what SetOSEnv exports; a test may change it to fail
	// authentication.
	Password string
	Auth     osauth.Options
	Dir      string // the test's temporary directory
}

// New registers the test's user and project with the emulator (it needs
// SLIPWAY_TEST_OS_AUTH_URL and SLIPWAY_TEST_OS_EMULATOR_ADMIN).
func New(t *testing.T) *Env {
	t.Helper()
	vals := testenv.Require(t, "SLIPWAY_TEST_OS_AUTH_URL", "SLIPWAY_TEST_OS_EMULATOR_ADMIN")
	e := &Env{T: t, Admin: openstackemu.Admin{URL: vals[1]}, Dir: t.TempDir()}
	e.Project = strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + time.Now().Format("150405.000000")
	e.Password = "pw-" + e.Project + "-Zq9x"
	if err := e.Admin.AddUser(context.Background(), openstackemu.User{Name: e.Project, Password: e.Password, Project: e.Project}); err != nil {
		t.Fatal(err)
	}
	e.Auth = osauth.Options{AuthURL: vals[0], Username: e.Project, Password: logging.Secret(e.Password), UserDomainName: "Default",
		ProjectName: e.Project, Region: "RegionOne", Retry: &httpx.RetryPolicy{Attempts: 3, Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}}
	return e
}

// SetOSEnv exports the credentials in OS_* variables, as an operator sets
// them for the CLI.
func (e *Env) SetOSEnv() {
	for k, v := range map[string]string{
		"OS_AUTH_URL": e.Auth.AuthURL, "OS_USERNAME": e.Auth.Username, "OS_PASSWORD": e.Password,
		"OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_NAME": e.Project, "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": "RegionOne",
	} {
		e.T.Setenv(k, v)
	}
}

// Inject adds a fault scoped to the test's project.
func (e *Env) Inject(f openstackemu.Fault) {
	e.T.Helper()
	f.Project = e.Project
	if err := e.Admin.Inject(context.Background(), f); err != nil {
		e.T.Fatal(err)
	}
}

// AssertFaultsFired checks that every injected fault was used: a test that
// passes without its fault firing proves nothing.
func (e *Env) AssertFaultsFired() {
	e.T.Helper()
	left, err := e.Admin.Faults(context.Background(), e.Project)
	if err != nil {
		e.T.Fatal(err)
	}
	if len(left) != 0 {
		e.T.Errorf("faults that never fired: %+v", left)
	}
}

// WriteSpec writes spec text to name in the test's directory.
func (e *Env) WriteSpec(name, text string) string {
	e.T.Helper()
	p := filepath.Join(e.Dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		e.T.Fatal(err)
	}
	return p
}

// Spec is the tests' spec text, template "t" and cluster "c" (3 masters,
// 2 workers in [1, 4]), with edits: pairs of old and new text, each
// replaced once.
func Spec(edits ...string) string {
	s := `template:
  name: t
  image: fedora-coreos-34
  keypair: kp
  master_lb_enabled: true
  floating_ip_enabled: true
  labels:
    kube_tag: v1.21.10
cluster:
  name: c
  master_count: 3
  node_count: 2
  min_node_count: 1
  max_node_count: 4
`
	for i := 0; i+1 < len(edits); i += 2 {
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	return s
}

// RegionsSpec is Spec in the emulator's two regions, RegionOne (region A)
// and RegionTwo (region B): RegionTwo has its own keypair and
// availability zone (so its template is another version) and one worker.
// Edits apply as in Spec, to the whole text.
func RegionsSpec(edits ...string) string {
	s := Spec() + `regions:
  - name: RegionOne
  - name: RegionTwo
    template:
      keypair: kp-b
      labels: {availability_zone: nova-b}
    cluster:
      node_count: 1
`
	for i := 0; i+1 < len(edits); i += 2 {
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	return s
}
