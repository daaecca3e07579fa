package zuulconfig

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/testenv"
)

func loadRepo(t *testing.T, root string) *Config {
	t.Helper()
	cfg, err := LoadDir(root)
	if err != nil {
		t.Fatalf("parsing zuul.d: %v", err)
	}
	return cfg
}

func TestRepoConfigIsValid(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := loadRepo(t, root)
	if err := Validate(root, cfg); err != nil {
		t.Fatalf("validating zuul.d:\n%v", err)
	}
	if err := CheckPlaybooks(root); err != nil {
		t.Fatalf("checking playbooks:\n%v", err)
	}
}

// TestRepoConfigShape pins what the pipelines run: check and gate run no
// secrets; post on each platform branch runs the five stages, in order,
// and on any other branch nothing.
func TestRepoConfigShape(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := loadRepo(t, root)
	if len(cfg.Projects) != 1 {
		t.Fatalf("want one project stanza, got %d", len(cfg.Projects))
	}
	p := cfg.Projects[0]
	if p.Queue == "" {
		t.Error("the project sets no shared queue for gate")
	}
	names := func(jobs []*FrozenJob) []string {
		var out []string
		for _, j := range jobs {
			out = append(out, j.Name)
		}
		return out
	}
	stages := []string{"slipway-build-image", "slipway-push-registry", "slipway-magnum-cluster", "slipway-deploy-k8s", "slipway-deploy-k8s-dr", "slipway-backup-verify"}
	tests := []struct {
		name, pipeline, branch string
		want                   []string
	}{
		{"check", "check", "platform/demo", []string{"slipway-build-image", "slipway-tests", "slipway-pipeline-local"}},
		{"gate", "gate", "platform/acme", []string{"slipway-build-image", "slipway-tests", "slipway-pipeline-local"}},
		{"post demo", "post", "platform/demo", stages},
		{"post acme", "post", "platform/acme", stages},
		{"post on a longer branch name", "post", "platform/demo2", nil},
		{"post on main", "post", "main", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, err := Freeze(cfg, p, tt.pipeline, tt.branch)
			if err != nil {
				t.Fatal(err)
			}
			got := names(jobs)
			// Dependency order is fixed for the post stages; compare sets
			// otherwise.
			if tt.pipeline != "post" {
				sort.Strings(got)
				sort.Strings(tt.want)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
			for _, j := range jobs {
				if tt.pipeline == "check" && j.PostReview {
					t.Errorf("job %s is post-review but runs in check", j.Name)
				}
			}
		})
	}
}

// TestRepoPostVariantsBindNamespace checks the deploy variant of each
// platform branch names that branch's own platform.
func TestRepoPostVariantsBindNamespace(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := loadRepo(t, root)
	for _, b := range []string{"demo", "acme"} {
		jobs, err := Freeze(cfg, cfg.Projects[0], "post", "platform/"+b)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.Name == "slipway-deploy-k8s" {
				if got := j.Vars["slipway_platform"]; got != b {
					t.Errorf("branch platform/%s deploys platform %v", b, got)
				}
			}
		}
	}
}

// TestRepoSecretsBinding checks which playbooks see which secrets: only the
// playbooks of the job that declares them, never the base job's.
func TestRepoSecretsBinding(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := loadRepo(t, root)
	jobs, err := Freeze(cfg, cfg.Projects[0], "post", "platform/demo")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, j := range jobs {
		for _, pb := range j.Playbooks {
			var s []string
			for _, u := range pb.Secrets {
				s = append(s, u.Name+"="+u.Secret)
			}
			if len(s) > 0 {
				got[j.Name+" "+pb.Path] = s
			}
		}
	}
	want := map[string][]string{}
	for _, job := range []string{"slipway-push-registry", "slipway-magnum-cluster", "slipway-deploy-k8s", "slipway-deploy-k8s-dr", "slipway-backup-verify"} {
		var s []string
		stage := strings.TrimSuffix(strings.TrimPrefix(job, "slipway-"), "-dr")
		switch job {
		case "slipway-push-registry":
			s = []string{"slipway_registry_a=slipway-registry-region-a", "slipway_registry_b=slipway-registry-region-b"}
		case "slipway-magnum-cluster":
			s = []string{"slipway_openstack=slipway-openstack-region-a", "slipway_openstack_b=slipway-openstack-region-b"}
		case "slipway-deploy-k8s":
			s = []string{"slipway_openstack=slipway-openstack-region-a", "slipway_s3=slipway-s3-region-b", "slipway_db=slipway-databases-primary"}
		case "slipway-deploy-k8s-dr":
			s = []string{"slipway_openstack=slipway-openstack-region-b", "slipway_s3=slipway-s3-region-b", "slipway_db=slipway-databases-dr"}
		case "slipway-backup-verify":
			// The CronJobs run in the clusters: no database credential on
			// the node; the pre-run is the failover's (kubeconfigs, S3 keys).
			stage = "backup"
			s = []string{"slipway_openstack=slipway-openstack-region-a", "slipway_openstack_b=slipway-openstack-region-b", "slipway_s3=slipway-s3-region-b"}
		}
		for _, ph := range []string{"pre", "run", "post"} {
			pb := "playbooks/" + stage + "/" + ph + ".yaml"
			if job == "slipway-backup-verify" && ph == "pre" {
				pb = "playbooks/failover/pre.yaml"
			}
			want[job+" "+pb] = s
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("secrets per playbook (-want +got):\n%s", diff)
	}
	for _, s := range cfg.Secrets {
		if !s.Placeholder {
			t.Errorf("secret %s: encrypted values are not marked PLACEHOLDER; real ciphertext must come from zuul-client encrypt", s.Name)
		}
	}
}

// TestEveryPlaybookIsUsed catches playbooks no job runs (drift).
func TestEveryPlaybookIsUsed(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := loadRepo(t, root)
	used := map[string]bool{}
	for _, j := range cfg.Jobs {
		for _, l := range [][]Playbook{j.PreRun, j.Run, j.PostRun} {
			for _, pb := range l {
				used[pb.Name] = true
			}
		}
	}
	for _, pb := range playbookFiles(t, root) {
		if !used[pb] {
			t.Errorf("%s is not run by any job", pb)
		}
	}
}

func playbookFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root, "playbooks"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			rel, _ := filepath.Rel(root, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// pluginDir writes the zuul_return stand-in where ansible can load it.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "zuul_return.py"), zuulReturnPlugin, 0o644); err != nil {
		t.Fatal(err)
	}
	// An empty configuration, so no ansible.cfg of the machine applies.
	if err := os.WriteFile(filepath.Join(dir, "ansible.cfg"), []byte("[defaults]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ansibleEnv is the environment for Debian's ansible tools: the system
// python first (a pyenv python3 cannot import ansible).
func ansibleEnv(root, plugins string) []string {
	env := []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + os.Getenv("HOME"),
		"ANSIBLE_ROLES_PATH=" + filepath.Join(root, "roles"), "ANSIBLE_NOCOLOR=1",
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(plugins, "tmp"), "ANSIBLE_ACTION_PLUGINS=" + plugins,
		"ANSIBLE_CONFIG=" + filepath.Join(plugins, "ansible.cfg"), "NO_COLOR=1", "TERM=dumb", "LANG=C.UTF-8"}
	return env
}

func TestPlaybooksSyntaxCheck(t *testing.T) {
	bin := testenv.Tool(t, "ansible-playbook")
	root := testenv.RepoRoot()
	plugins := pluginDir(t)
	for _, pb := range playbookFiles(t, root) {
		t.Run(pb, func(t *testing.T) {
			cmd := exec.Command(bin, "--syntax-check", "-i", "controller,", pb)
			cmd.Dir = root
			cmd.Env = ansibleEnv(root, plugins)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ansible-playbook --syntax-check %s: %v\n%s", pb, err, out)
			}
		})
	}
}

func TestAnsibleLint(t *testing.T) {
	bin := testenv.Tool(t, "ansible-lint")
	root := testenv.RepoRoot()
	cmd := exec.Command(bin, "--offline", "-q", "-p", "playbooks", "roles")
	cmd.Dir = root
	cmd.Env = ansibleEnv(root, pluginDir(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ansible-lint: %v\n%s", err, out)
	}
}

func TestYamllint(t *testing.T) {
	bin := testenv.Tool(t, "yamllint")
	root := testenv.RepoRoot()
	cmd := exec.Command(bin, "--strict", "-f", "parsable", "zuul.d", "playbooks", "roles", ".yamllint", ".ansible-lint")
	cmd.Dir = root
	cmd.Env = ansibleEnv(root, pluginDir(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("yamllint: %v\n%s", err, out)
	}
}

// copyTree copies the parts of the repository the checks read.
func copyTree(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	for _, dir := range []string{"zuul.d", "playbooks", "roles"} {
		testenv.CopyDir(t, filepath.Join(root, dir), filepath.Join(dst, dir))
	}
	return dst
}

// edit replaces old with new in one file of a copied tree; the test fails
// when old is not there (the mutation would silently not happen).
func edit(t *testing.T, dir, file, old, new string) { testenv.Edit(t, dir, file, old, new) }

// TestBrokenConfigurationsAreCaught breaks copies of the repository's
// configuration one way at a time and checks each is reported, with the
// file and line of the problem.
func TestBrokenConfigurationsAreCaught(t *testing.T) {
	root := testenv.RepoRoot()
	tests := []struct {
		name     string
		file     string
		old, new string
		// want must match the error (a regexp); it should name the place.
		want string
	}{
		{"missing secret", "zuul.d/jobs.yaml", "secret: slipway-registry-region-b", "secret: slipway-registry-region-c",
			`zuul.d/jobs.yaml:\d+: .*job slipway-push-registry: secret "slipway-registry-region-c" is not defined`},
		{"secret removed from secrets file", "zuul.d/secrets.yaml", "name: slipway-s3-region-b", "name: slipway-s3-region-x",
			`zuul.d/jobs.yaml:\d+: .*job slipway-backup-verify: secret "slipway-s3-region-b" is not defined`},
		{"wrong playbook path", "zuul.d/jobs.yaml", "run: playbooks/deploy-k8s/run.yaml", "run: playbooks/deploy/run.yaml",
			`zuul.d/jobs.yaml:\d+: .*job slipway-deploy-k8s: playbook playbooks/deploy/run.yaml does not exist`},
		{"playbook path that is not yaml", "zuul.d/jobs.yaml", "run: playbooks/tests/run.yaml", "run: playbooks/tests/run",
			`job slipway-tests: playbook "playbooks/tests/run" must be a .yaml or .yml file`},
		{"unanchored branch matcher", "zuul.d/project.yaml", "branches: ^platform/demo$\n        - slipway-push-registry", "branches: ^platform/demo\n        - slipway-push-registry",
			`zuul.d/project.yaml:\d+: .*"\^platform/demo" must be anchored as \^\.\.\.\$`},
		{"branch matcher that does not compile", "zuul.d/project.yaml", "branches: ^platform/acme$\n        - slipway-push-registry", "branches: ^platform/(acme$\n        - slipway-push-registry",
			`zuul.d/project.yaml:\d+: .*does not compile`},
		{"unknown job key", "zuul.d/jobs.yaml", "    timeout: 3600\n", "    timeout: 3600\n    branch: platform/demo\n",
			`zuul.d/jobs.yaml:\d+: job\.branch: unknown field \(known: .*branches.*\)`},
		{"unknown key in a playbook entry", "zuul.d/jobs.yaml", "        cleanup: true\n", "        cleanup: true\n        semaphore: x\n",
			`zuul.d/jobs.yaml:\d+: job\.post-run\[\d+\]\.semaphore: unknown field \(known: cleanup, name, semaphores\)`},
		{"unknown project pipeline", "zuul.d/project.yaml", "    check:\n", "    checks:\n",
			`zuul.d/project.yaml:\d+: project\.checks: unknown field \(known: .*check.*\)`},
		{"gate queue in the pipeline (no longer valid)", "zuul.d/project.yaml", "    gate:\n      jobs:\n", "    gate:\n      queue: slipway\n      jobs:\n",
			`zuul.d/project.yaml:\d+: project\.gate\.queue: unknown field \(known: debug, fail-fast, jobs\)`},
		{"post-review false", "zuul.d/jobs.yaml", "    post-review: true\n    semaphores:\n      - slipway-magnum-region-a", "    post-review: false\n    semaphores:\n      - slipway-magnum-region-a",
			`zuul.d/jobs.yaml:\d+: .*post-review: false is not allowed`},
		{"secrets without explicit post-review", "zuul.d/jobs.yaml", "    post-review: true\n    semaphores:\n      - slipway-magnum-region-a", "    semaphores:\n      - slipway-magnum-region-a",
			`job slipway-magnum-cluster: has secrets, so Zuul makes it post-review`},
		{"unknown parent", "zuul.d/jobs.yaml", "name: slipway-tests\n    parent: slipway-base", "name: slipway-tests\n    parent: slipway-bsae",
			`job slipway-tests: parent "slipway-bsae" is not defined`},
		{"unknown dependency", "zuul.d/jobs.yaml", "      - slipway-magnum-cluster\n", "      - slipway-magnum\n",
			`job slipway-deploy-k8s: dependency "slipway-magnum" is not a defined job`},
		{"undefined semaphore", "zuul.d/jobs.yaml", "semaphores: slipway-deploy-region-a", "semaphores: slipway-deploy-region-c",
			`job slipway-deploy-k8s: semaphore "slipway-deploy-region-c" is not defined`},
		{"undefined queue", "zuul.d/project.yaml", "    queue: slipway\n", "    queue: slipway-gate\n",
			`project: queue "slipway-gate" is not defined`},
		{"secret job in check", "zuul.d/project.yaml", "        - slipway-tests\n        - slipway-pipeline-local\n    gate:", "        - slipway-tests\n        - slipway-push-registry\n        - slipway-pipeline-local\n    gate:",
			`pipeline check, branch .*: .*(pre-review pipeline check does not allow post-review job slipway-push-registry|depends on slipway-build-image)`},
		{"hard dependency that does not run", "zuul.d/project.yaml", "        - slipway-magnum-cluster:\n            branches: ^platform/acme$\n", "",
			`pipeline post, branch platform/acme: .*job slipway-deploy-k8s depends on slipway-magnum-cluster, which does not run here`},
		{"abstract job in a pipeline", "zuul.d/project.yaml", "        - slipway-tests\n        - slipway-pipeline-local\n    gate:", "        - slipway-tests\n        - slipway-base\n        - slipway-pipeline-local\n    gate:",
			`job slipway-base is abstract and may not be directly run`},
		{"secret alias that is not an Ansible variable", "zuul.d/jobs.yaml", "name: slipway_s3\n", "name: slipway-s3\n",
			`secret name "slipway-s3" is not a valid Ansible variable name`},
		{"duplicate secret", "zuul.d/secrets.yaml", "name: slipway-s3-region-b", "name: slipway-s3-region-a",
			`zuul.d/secrets.yaml:\d+: .*secret slipway-s3-region-a is already defined at zuul.d/secrets.yaml:\d+`},
		{"unknown secret tag", "zuul.d/secrets.yaml", "password: !encrypted/pkcs1-oaep\n        - PLACEHOLDER-registry-region-a", "password: !encrypted/rsa\n        - PLACEHOLDER-registry-region-a",
			`zuul.d/secrets.yaml:\d+: .*unknown tag !encrypted/rsa`},
		{"timeout that is not a number", "zuul.d/jobs.yaml", "timeout: 3600", "timeout: 1h",
			`zuul.d/jobs.yaml:\d+: job\.timeout: must be a whole number of seconds, not "1h"`},
		{"missing role", "playbooks/base/pre.yaml", "name: slipway_prepare", "name: slipway_prepair",
			`playbooks/base/pre.yaml:\d+: .*role "slipway_prepair" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyTree(t, root)
			edit(t, dir, tt.file, tt.old, tt.new)
			cfg, err := LoadDir(dir)
			if err == nil {
				err = errors.Join(Validate(dir, cfg), CheckPlaybooks(dir))
			}
			wantConfigError(t, err, tt.want)
		})
	}
}

// TestBrokenPlaybookIsCaught runs the syntax check on a broken copy, so a
// playbook error cannot slip past the test above.
func TestBrokenPlaybookIsCaught(t *testing.T) {
	bin := testenv.Tool(t, "ansible-playbook")
	root := testenv.RepoRoot()
	dir := copyTree(t, root)
	edit(t, dir, "playbooks/deploy-k8s/run.yaml", "  hosts: all\n", "  hosts: all\n  taks: []\n")
	cmd := exec.Command(bin, "--syntax-check", "-i", "controller,", "playbooks/deploy-k8s/run.yaml")
	cmd.Dir = dir
	cmd.Env = ansibleEnv(dir, pluginDir(t))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("syntax check passed a playbook with an unknown play key:\n%s", out)
	}
	if !strings.Contains(string(out), "taks") {
		t.Errorf("syntax check output does not name the bad key:\n%s", out)
	}
}
