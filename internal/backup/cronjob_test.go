package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/testenv"
)

func exampleValues(t *testing.T, name string) *Values {
	t.Helper()
	v, err := LoadValues(filepath.Join("..", "..", "examples", "backup", name))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRenderExamples(t *testing.T) {
	secretEnvs := map[string]bool{"AWS_SECRET_ACCESS_KEY": true, "AWS_ACCESS_KEY_ID": true, "SLIPWAY_MYSQL_PASSWORD": true, "SLIPWAY_MONGO_URI": true}
	for _, tc := range []struct {
		file      string
		wantJobs  []string
		wantFirst []string // first args of each job
	}{
		{"primary.yaml", []string{"slipway-backup-create", "slipway-backup-prune"}, []string{"create", "prune"}},
		{"dr.yaml", []string{"slipway-backup-restore", "slipway-backup-status"}, []string{"restore", "status"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			v := exampleValues(t, tc.file)
			out, err := RenderCronJobs(v)
			if err != nil {
				t.Fatal(err)
			}
			var names, first []string
			for _, doc := range strings.Split(string(out), "\n---\n") {
				var cj batchv1.CronJob
				if err := sigsyaml.UnmarshalStrict([]byte(doc), &cj); err != nil {
					t.Fatalf("rendered YAML does not decode as a CronJob: %v\n%s", err, doc)
				}
				names = append(names, cj.Name)
				if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
					t.Errorf("%s: concurrencyPolicy %q", cj.Name, cj.Spec.ConcurrencyPolicy)
				}
				pod := cj.Spec.JobTemplate.Spec.Template.Spec
				c := pod.Containers[0]
				first = append(first, c.Args[0])
				if !strings.Contains(c.Image, "@sha256:") {
					t.Errorf("%s: image %s not pinned by digest", cj.Name, c.Image)
				}
				if c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() {
					t.Errorf("%s: no cpu/memory limits: %+v", cj.Name, c.Resources.Limits)
				}
				for _, e := range c.Env {
					if secretEnvs[e.Name] && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
						t.Errorf("%s: %s is not taken from a Secret: %+v", cj.Name, e.Name, e)
					}
				}
				for _, a := range c.Args {
					if strings.Contains(a, "password") || strings.Contains(a, "mongodb://") {
						t.Errorf("%s: argument %q carries a secret", cj.Name, a)
					}
				}
				for _, e := range c.Env {
					// Every value in the spec is a name, an address or a path.
					if e.Value != "" && (strings.Contains(e.Value, "@") || strings.Contains(strings.ToLower(e.Name), "password") || strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "URI")) {
						t.Errorf("%s: env %s holds a value %q: secrets must come from a Secret", cj.Name, e.Name, e.Value)
					}
				}
				if c.Args[0] == "status" {
					if diff := cmp.Diff([]string{"status", "--site=dr", "--max-age=26h"}, c.Args); diff != "" {
						t.Errorf("status job args (-want +got):\n%s", diff)
					}
					// The DR servers, so that status reads their restore journals.
					if !hasEnv(c.Env, "SLIPWAY_MYSQL_HOST") || !hasEnv(c.Env, "SLIPWAY_MYSQL_PASSWORD") || !hasEnv(c.Env, "SLIPWAY_MONGO_URI") {
						t.Errorf("status job lacks the DR servers: %+v", c.Env)
					}
				}
				if v.Role == "dr" && c.Args[0] == "restore" {
					if !contains(c.Args, "--latest") {
						t.Errorf("restore job args %v lack --latest", c.Args)
					}
					if !hasEnv(c.Env, "SLIPWAY_AGE_IDENTITY_FILE") || len(pod.Volumes) < 2 {
						t.Errorf("restore job does not mount the age identity: %+v", pod.Volumes)
					}
				}
			}
			if diff := cmp.Diff(tc.wantJobs, names); diff != "" {
				t.Errorf("CronJobs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFirst, first); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func hasEnv(env []corev1.EnvVar, name string) bool {
	for _, e := range env {
		if e.Name == name {
			return true
		}
	}
	return false
}

const goodPrimary = `role: primary
site: primary
namespace: acme
image: reg.example/backup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
schedule: {create: "0 2 * * *", prune: "0 3 * * *"}
s3: {bucket: b, credentialsSecret: s3}
mysql: {host: mysql, user: bk, passwordSecret: {name: pw, key: password}, databases: [app]}
retention: {daily: 7}
resources: {limits: {cpu: "1", memory: 256Mi}}
`

const goodDR = `role: dr
site: dr
namespace: acme
image: localhost:5000/slipway/backup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
schedule: {restore: "0 5 * * *"}
s3: {bucket: b, credentialsSecret: s3}
mysql: {host: mysql, user: root, passwordSecret: {name: pw, key: password}}
resources: {limits: {cpu: "1", memory: 256Mi}}
`

func TestParseValuesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", goodPrimary + "colour: blue\n", "v.yaml:10: colour: unknown field"},
		{"wrong type", strings.Replace(goodPrimary, "{daily: 7}", "{daily: seven}", 1), `v.yaml:8: retention.daily: must be a whole number, not "seven"`},
		{"tag not digest", strings.Replace(goodPrimary, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ":latest", 1), `v.yaml:4: image: "reg.example/backup:latest" is not pinned by digest`},
		{"bad role", strings.Replace(goodPrimary, "role: primary", "role: both", 1), `v.yaml:1: role: "both" is not primary or dr`},
		{"bad schedule", strings.Replace(goodPrimary, `prune: "0 3 * * *"`, `prune: "daily"`, 1), `v.yaml:5: schedule.prune: "daily" is not a cron schedule`},
		{"no retention", strings.Replace(goodPrimary, "retention: {daily: 7}\n", "", 1), "v.yaml:1: retention: no retention rule"},
		{"no limits", strings.Replace(goodPrimary, "resources: {limits: {cpu: \"1\", memory: 256Mi}}\n", "", 1), "resources.limits: missing"},
		{"bad quantity", strings.Replace(goodPrimary, "256Mi", "lots", 1), `v.yaml:9: resources.limits.memory: "lots" is not a quantity`},
		{"secret key missing", strings.Replace(goodPrimary, ", key: password}", "}", 1), "v.yaml:7: mysql.passwordSecret.key: missing"},
		{"bad database", strings.Replace(goodPrimary, "databases: [app]", "databases: [\"a`b\"]", 1), "v.yaml:7: mysql.databases"},
		{"prefix without slash", strings.Replace(goodPrimary, "{bucket: b,", "{bucket: b, prefix: acme,", 1), `v.yaml:6: s3.prefix: "acme" must end in "/"`},
		{"not yaml", "role: [", "v.yaml:1:"},
		{"empty", "", "v.yaml: empty file: it needs role"},
		{"dr: bad maxAge", goodDR + "maxAge: soon\n", `v.yaml:9: maxAge: "soon" is not a positive duration (e.g. 26h)`},
		{"dr: bad status schedule", strings.Replace(goodDR, `{restore: "0 5 * * *"}`, `{restore: "0 5 * * *", status: "often"}`, 1), `v.yaml:5: schedule.status: "often" is not a cron schedule`},
		{"primary: maxAge", goodPrimary + "maxAge: 26h\n", "v.yaml:10: maxAge: only a dr site has the freshness check"},
		{"bad recipient", goodPrimary + "encryption: {recipients: [age1nope]}\n", `v.yaml:10: encryption.recipients[0]: "age1nope" is not an age1... public key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseValues(strings.NewReader(tc.yaml), "v.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *config.Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	for _, good := range []string{goodPrimary, goodDR} {
		if _, err := ParseValues(strings.NewReader(good), "v.yaml"); err != nil {
			t.Errorf("good values: %v", err)
		}
	}
	// The DR defaults: an hourly freshness check with a 26h limit, and the
	// image pinned to the node registry's address.
	v, _ := ParseValues(strings.NewReader(goodDR), "v.yaml")
	if jobs := CronJobs(v); len(jobs) != 2 || jobs[1].Spec.Schedule != "0 * * * *" || jobs[1].Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image != v.Image {
		t.Errorf("DR CronJobs: %+v", jobs)
	}
}

func FuzzParseValues(f *testing.F) {
	f.Add(goodPrimary)
	for _, n := range []string{"primary.yaml", "dr.yaml"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "examples", "backup", n)); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("role: dr\n")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseValues(strings.NewReader(s), "f.yaml")
		var ce *config.Error
		switch {
		case errors.As(err, &ce):
			if !strings.HasPrefix(err.Error(), "f.yaml:") {
				t.Fatalf("error without file:line: %v", err)
			}
		case err != nil:
			t.Fatalf("error that does not name file, line and field: %v", err)
		default:
			if _, err := RenderCronJobs(v); err != nil {
				t.Fatalf("valid values do not render: %v", err)
			}
		}
	})
}

// TestCronJobsServerDryRun sends the rendered CronJobs of both examples to
// the real kube-apiserver with a server-side dry run (full validation and
// admission, nothing stored).
func TestCronJobsServerDryRun(t *testing.T) {
	kc := testenv.Get(t, "SLIPWAY_TEST_KUBECONFIG")
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := "backup-test-" + randHex(3)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	for _, file := range []string{"primary.yaml", "dr.yaml"} {
		v := exampleValues(t, file)
		v.Namespace = ns
		for _, cj := range CronJobs(v) {
			got, err := cs.BatchV1().CronJobs(ns).Create(ctx, cj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Errorf("%s: server-side dry run of %s rejected: %v", file, cj.Name, err)
				continue
			}
			if got.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || got.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image != v.Image {
				t.Errorf("%s: server returned %+v", cj.Name, got.Spec)
			}
		}
		list, err := cs.BatchV1().CronJobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 0 {
			t.Errorf("dry run stored CronJobs: %d (%v)", len(list.Items), err)
		}
	}
}

// TestConfigErrorFormat pins the whole message of each kind of problem in a
// values file: FILE:LINE: field.path: what is wrong (what is allowed).
func TestConfigErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{
			"unknown key", strings.Replace(goodPrimary, "{bucket: b,", "{bucket: b, region_name: x,", 1),
			"values.yaml:6: s3.region_name: unknown field (known: bucket, caSecret, credentialsSecret, endpoint, prefix, region)",
		},
		{
			"wrong type", strings.Replace(goodPrimary, "databases: [app]", "databases: app", 1),
			`values.yaml:7: mysql.databases: must be a list, not "app"`,
		},
		{
			"bad value", strings.Replace(goodPrimary, "databases: [app]", "databases: [app, \"a.b\"]", 1),
			`values.yaml:7: mysql.databases[1]: MySQL database name "a.b" is empty, longer than 52 characters or holds a backquote, slash, backslash or dot`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseValues(strings.NewReader(tc.yaml), "values.yaml")
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}
