package zuulconfig

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/testenv"
)

// TestSecretEnvironmentIsCaught adds secrets to copies of the playbooks,
// one way at a time: each way that reaches a command line is reported at
// its line; a non-secret field of a secret, or a secret in a file, is not.
func TestSecretEnvironmentIsCaught(t *testing.T) {
	root := testenv.RepoRoot()
	const verify = "          register: slipway_deploy\n"
	type change struct{ file, old, new string }
	tests := []struct {
		name  string
		edits []change
		// want matches the error (a regexp); "" means none.
		want string
	}{
		{"encrypted field in a task's environment", []change{{"playbooks/deploy-k8s/run.yaml", verify,
			verify + "          environment:\n            AWS_SECRET_ACCESS_KEY: \"{{ slipway_s3.secret_key }}\"\n"}},
			`playbooks/deploy-k8s/run.yaml:\d+: environment AWS_SECRET_ACCESS_KEY templates the secret slipway_s3\.secret_key, which Ansible puts on the module's command line`},
		{"field by subscript", []change{{"playbooks/deploy-k8s/run.yaml", verify,
			verify + "          environment:\n            KEY: \"{{ slipway_db['mongodb_uri'] | default('') }}\"\n"}},
			`playbooks/deploy-k8s/run.yaml:\d+: environment KEY templates the secret slipway_db\.mongodb_uri`},
		{"whole secret in a play's environment", []change{{"playbooks/backup/post.yaml", "  hosts: all\n",
			"  hosts: all\n  environment: \"{{ slipway_s3 }}\"\n"}},
			`playbooks/backup/post.yaml:\d+: environment templates the secret slipway_s3,`},
		{"through a play variable", []change{
			{"playbooks/deploy-k8s/run.yaml", "  vars:\n    slipway_deploy_argv:", "  vars:\n    slipway_backup_secret_files: {primary-mongo-uri: \"{{ slipway_db.mongodb_uri }}\"}\n    slipway_deploy_argv:"},
			{"playbooks/deploy-k8s/run.yaml", verify,
				verify + "          environment:\n            SLIPWAY_MONGO_URI: \"{{ slipway_backup_secret_files['primary-mongo-uri'] }}\"\n"}},
			`playbooks/deploy-k8s/run.yaml:\d+: environment SLIPWAY_MONGO_URI templates the secret slipway_\w+\.\w+ \(through slipway_backup_secret_files\)`},
		{"through a zuul.d job variable", []change{
			{"zuul.d/jobs.yaml", "      slipway_namespace_prefix: \"\"\n",
				"      slipway_namespace_prefix: \"\"\n      slipway_leak_env: {PW: \"{{ slipway_registry_a.password }}\"}\n"},
			{"playbooks/deploy-k8s/run.yaml", verify, verify + "          environment: \"{{ slipway_leak_env }}\"\n"}},
			`playbooks/deploy-k8s/run.yaml:\d+: environment templates the secret slipway_registry_a\.password \(through slipway_leak_env\)`},
		{"secret on an argv", []change{{"playbooks/push-registry/run.yaml", "'--zuul-vars', slipway_work_dir ~ '/zuul-vars.json'] }}",
			"'--zuul-vars', slipway_work_dir ~ '/zuul-vars.json', '--password=' ~ slipway_registry_b.password] }}"}},
			`playbooks/push-registry/run.yaml:\d+: ansible.builtin.command argv templates the secret slipway_registry_b\.password`},
		{"secret on a free-form shell line", []change{{"playbooks/magnum-cluster/pre.yaml", "    - name: Write clouds.yaml from the OpenStack secret\n",
			"    - name: Leak\n      ansible.builtin.shell: echo {{ slipway_openstack.application_credential_secret }}\n      changed_when: false\n\n    - name: Write clouds.yaml from the OpenStack secret\n"}},
			`playbooks/magnum-cluster/pre.yaml:\d+: ansible.builtin.shell templates the secret slipway_openstack\.application_credential_secret`},
		{"non-secret fields of secrets", []change{{"playbooks/deploy-k8s/run.yaml", verify,
			verify + "          environment:\n            SLIPWAY_S3_ENDPOINT: \"{{ slipway_s3.endpoint }}\"\n            SLIPWAY_MYSQL_USER: \"{{ slipway_db.mysql_user }}\"\n"}},
			""},
		{"secret in a file, its path in the environment", []change{{"playbooks/deploy-k8s/run.yaml", verify,
			verify + "          environment:\n            SLIPWAY_SECRETS_FILE: \"{{ slipway_work_dir }}/private/deploy-secrets.yaml\"\n"}},
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyTree(t, root)
			for _, c := range tt.edits {
				edit(t, dir, c.file, c.old, c.new)
			}
			err := CheckSecretEnvironment(dir, loadRepo(t, dir))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("reported a clean edit: %v", err)
				}
				return
			}
			wantConfigError(t, err, tt.want)
		})
	}
}

func TestExecutorEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"paths, locale and Go settings stay",
			[]string{"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "GOCACHE=/c", "TMPDIR=/t"},
			[]string{"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "GOCACHE=/c", "TMPDIR=/t"}},
		{"the caller's secrets and settings go",
			[]string{"SLIPWAY_TEST_OS_PASSWORD=pw", "AWS_SECRET_ACCESS_KEY=k", "AWS_CA_BUNDLE=/ca", "KUBECONFIG=/k", "PATH=/bin", "OS_CLOUD=x"},
			[]string{"PATH=/bin"}},
		{"a name that only starts like a kept one goes", []string{"PATHS=x", "HOMEDIR=y"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ExecutorEnv(tt.environ)); diff != "" {
				t.Errorf("ExecutorEnv (-want +got):\n%s", diff)
			}
		})
	}
}
