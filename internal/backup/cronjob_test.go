package backup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/deploy/deploytest"
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
		{"primary.yaml", []string{"slipway-backup-create", "slipway-backup-prune", "slipway-backup-final", "slipway-backup-freeze", "slipway-backup-unfreeze"},
			[]string{"create", "prune", "create", "freeze", "unfreeze"}},
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
				// The failover's jobs are suspended: they run only when triggered.
				onDemand := cj.Name == "slipway-backup-final" || cj.Name == "slipway-backup-freeze" || cj.Name == "slipway-backup-unfreeze"
				if cj.Spec.Suspend == nil || *cj.Spec.Suspend != onDemand || onDemand && cj.Spec.Schedule != never {
					t.Errorf("%s: suspend %v schedule %q: want suspended and never scheduled only for the failover's jobs", cj.Name, cj.Spec.Suspend, cj.Spec.Schedule)
				}
				switch cj.Name {
				case "slipway-backup-final":
					create := jobArgs(t, out, "slipway-backup-create")
					if create[len(create)-1] != "--skip-frozen" {
						t.Errorf("scheduled create %v: want --skip-frozen last", create)
					}
					// The final backup is made at the frozen site.
					if diff := cmp.Diff(append(create[:len(create)-1], "--verify"), c.Args); diff != "" {
						t.Errorf("final job args: want the create's without --skip-frozen and with --verify (-want +got):\n%s", diff)
					}
				case "slipway-backup-freeze", "slipway-backup-unfreeze":
					if diff := cmp.Diff([]string{c.Args[0], "--site=primary"}, c.Args); diff != "" {
						t.Errorf("%s args (-want +got):\n%s", cj.Name, diff)
					}
					// The admin of freeze.mysql, not the dump user.
					if got := envValue(c.Env, "SLIPWAY_MYSQL_USER"); got != "root" {
						t.Errorf("%s: MySQL user %q, want freeze.mysql.user root", cj.Name, got)
					}
					if pw := envRef(c.Env, "SLIPWAY_MYSQL_PASSWORD"); pw == nil || pw.Name != "mysql-root" {
						t.Errorf("%s: MySQL password from %+v, want Secret mysql-root", cj.Name, pw)
					}
					if !hasEnv(c.Env, "SLIPWAY_MONGO_URI") {
						t.Errorf("%s: no MongoDB URI", cj.Name)
					}
				case "slipway-backup-create":
					if got := envValue(c.Env, "SLIPWAY_MYSQL_USER"); got != "backup" {
						t.Errorf("create: MySQL user %q, want backup", got)
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

// jobArgs returns the container args of the CronJob name in a rendered stream.
func jobArgs(t *testing.T, out []byte, name string) []string {
	t.Helper()
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var cj batchv1.CronJob
		if err := sigsyaml.UnmarshalStrict([]byte(doc), &cj); err != nil {
			t.Fatal(err)
		}
		if cj.Name == name {
			return slices.Clone(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args)
		}
	}
	t.Fatalf("no CronJob %s rendered", name)
	return nil
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func envRef(env []corev1.EnvVar, name string) *corev1.SecretKeySelector {
	for _, e := range env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
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
	f.Add(goodPrimary + localPlacement)
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
	cs := deploytest.RequireKube(t).Core
	ctx := context.Background()
	ns := "backup-test-" + randHex(3)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// The examples, and values with every pod field (the test env's real
	// node placement).
	values := map[string]*Values{}
	for _, file := range []string{"primary.yaml", "dr.yaml"} {
		values[file] = exampleValues(t, file)
	}
	for i, v := range placementValues(t) {
		values[fmt.Sprintf("placement %s", []string{"primary", "dr"}[i])] = v
	}
	for _, file := range slices.Sorted(maps.Keys(values)) {
		v := values[file]
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
			// What the server keeps is what was sent: suspension and the pod's placement.
			if !cmp.Equal(cj.Spec.Suspend, got.Spec.Suspend) {
				t.Errorf("%s: %s: suspend sent %v, server has %v", file, cj.Name, cj.Spec.Suspend, got.Spec.Suspend)
			}
			sent, kept := cj.Spec.JobTemplate.Spec.Template.Spec, got.Spec.JobTemplate.Spec.Template.Spec
			if sent.HostNetwork != kept.HostNetwork || !cmp.Equal(sent.Tolerations, kept.Tolerations) || !cmp.Equal(sent.NodeSelector, kept.NodeSelector) ||
				!cmp.Equal(sent.Affinity, kept.Affinity) || (sent.DNSPolicy != "" && sent.DNSPolicy != kept.DNSPolicy) {
				t.Errorf("%s: %s: the server changed the pod's placement:\nsent %+v\nkept %+v", file, cj.Name, sent, kept)
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
		{
			// Kubernetes' own types read the same way, by their own field names.
			"unknown key in a Kubernetes field", goodPrimary + "tolerations:\n  - key: slipway.test/real-node\n    operator: Exists\n    effects: NoSchedule\n",
			"values.yaml:13: tolerations[0].effects: unknown field (known: effect, key, operator, tolerationSeconds, value)",
		},
		{
			"wrong type in a Kubernetes field", goodPrimary + "podSecurityContext: {runAsUser: nobody}\n",
			`values.yaml:10: podSecurityContext.runAsUser: must be a whole number, not "nobody"`,
		},
		{
			"bad value of a pod field", goodPrimary + "hostNetwork: true\ndnsPolicy: host\n",
			`values.yaml:11: dnsPolicy: "host" is not ClusterFirst, ClusterFirstWithHostNet or Default`,
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

// localPlacement is the pod placement the test env's real node needs (the
// pods reach the host's 127.0.0.1 databases), plus every other pod field.
const localPlacement = `hostNetwork: true
dnsPolicy: Default
nodeSelector: {kubernetes.io/hostname: node-a0}
tolerations:
  - {key: slipway.test/real-node, operator: Exists, effect: NoSchedule}
serviceAccountName: backup
podLabels: {example.org/team: platform}
podAnnotations: {example.org/note: "a b"}
podSecurityContext: {runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
securityContext: {runAsUser: 1000}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/os, operator: In, values: [linux]}
`

func placementValues(t *testing.T) []*Values {
	t.Helper()
	var out []*Values
	for _, good := range []string{goodPrimary, goodDR} {
		v, err := ParseValues(strings.NewReader(good+localPlacement), "v.yaml")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestRenderPodPlacement: every job's pod gets the values' placement and
// identity as written, the labels and security contexts merged over ours.
func TestRenderPodPlacement(t *testing.T) {
	for _, v := range placementValues(t) {
		for _, cj := range CronJobs(v) {
			pod := cj.Spec.JobTemplate.Spec.Template
			spec, c := pod.Spec, pod.Spec.Containers[0]
			if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSDefault || spec.ServiceAccountName != "backup" {
				t.Errorf("%s: hostNetwork %t dnsPolicy %q serviceAccountName %q", cj.Name, spec.HostNetwork, spec.DNSPolicy, spec.ServiceAccountName)
			}
			if diff := cmp.Diff(map[string]string{"kubernetes.io/hostname": "node-a0"}, spec.NodeSelector); diff != "" {
				t.Errorf("%s: nodeSelector (-want +got):\n%s", cj.Name, diff)
			}
			wantTol := []corev1.Toleration{{Key: "slipway.test/real-node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			if diff := cmp.Diff(wantTol, spec.Tolerations); diff != "" {
				t.Errorf("%s: tolerations (-want +got):\n%s", cj.Name, diff)
			}
			if a := spec.Affinity; a == nil || a.NodeAffinity == nil ||
				a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "linux" {
				t.Errorf("%s: affinity %+v", cj.Name, a)
			}
			if pod.Labels["example.org/team"] != "platform" || pod.Labels["slipway.dev/site"] != v.Site || pod.Labels["app.kubernetes.io/component"] == "" {
				t.Errorf("%s: pod labels %v", cj.Name, pod.Labels)
			}
			if pod.Annotations["example.org/note"] != "a b" {
				t.Errorf("%s: pod annotations %v", cj.Name, pod.Annotations)
			}
			wantPodSC := &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(1000)), FSGroup: ptr(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
			if diff := cmp.Diff(wantPodSC, spec.SecurityContext); diff != "" {
				t.Errorf("%s: pod securityContext (-want +got):\n%s", cj.Name, diff)
			}
			wantSC := &corev1.SecurityContext{RunAsUser: ptr(int64(1000)), AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
			if diff := cmp.Diff(wantSC, c.SecurityContext); diff != "" {
				t.Errorf("%s: container securityContext (-want +got):\n%s", cj.Name, diff)
			}
		}
	}
	// Without the fields the pod is as before: no placement, our defaults.
	v, err := ParseValues(strings.NewReader(goodPrimary), "v.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := CronJobs(v)[0].Spec.JobTemplate.Spec.Template.Spec
	podSC, sc := podDefaults()
	if spec.HostNetwork || spec.DNSPolicy != "" || spec.NodeSelector != nil || spec.Tolerations != nil || spec.Affinity != nil ||
		!cmp.Equal(podSC, spec.SecurityContext) || !cmp.Equal(sc, spec.Containers[0].SecurityContext) {
		t.Errorf("pod without placement values: %+v", spec)
	}
}

func TestParsePodValuesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"toleration operator", goodPrimary + "tolerations: [{key: a, operator: Maybe}]\n", `v.yaml:10: tolerations[0].operator: "Maybe" is not Exists or Equal`},
		{"toleration unknown field", goodPrimary + "tolerations: [{key: a, efect: NoSchedule}]\n", "v.yaml:10: tolerations[0].efect: unknown field (known: effect, key, operator, tolerationSeconds, value)"},
		{"toleration effect", goodPrimary + "tolerations: [{key: a, operator: Exists, effect: Never}]\n", `v.yaml:10: tolerations[0].effect: "Never" is not NoSchedule, PreferNoSchedule or NoExecute`},
		{"toleration every key, Equal", goodPrimary + "tolerations: [{operator: Equal}]\n", "v.yaml:10: tolerations[0].operator: an empty key (every taint) needs operator Exists"},
		{"toleration seconds without NoExecute", goodPrimary + "tolerations: [{key: a, operator: Exists, tolerationSeconds: 5}]\n", "v.yaml:10: tolerations[0].tolerationSeconds: only with effect NoExecute"},
		{"hostNetwork not a bool", goodPrimary + "hostNetwork: yes\n", `v.yaml:10: hostNetwork: must be true or false, not "yes"`},
		{"dnsPolicy None", goodPrimary + "dnsPolicy: None\n", "v.yaml:10: dnsPolicy: None needs a dnsConfig"},
		{"dnsPolicy unknown", goodPrimary + "dnsPolicy: Host\n", `v.yaml:10: dnsPolicy: "Host" is not ClusterFirst, ClusterFirstWithHostNet or Default`},
		{"nodeSelector key", goodPrimary + "nodeSelector: {\"a b\": x}\n", `v.yaml:10: nodeSelector.a b: "a b" is not a label key`},
		{"nodeSelector value", goodPrimary + "nodeSelector: {a: \"x y\"}\n", `v.yaml:10: nodeSelector.a: "x y" is not a label value`},
		{"nodeSelector not a map", goodPrimary + "nodeSelector: [a]\n", "v.yaml:10: nodeSelector: must be a mapping of key: value, not a list"},
		{"podLabels ours", goodPrimary + "podLabels: {slipway.dev/site: x}\n", "v.yaml:10: podLabels.slipway.dev/site: set by backup cronjob itself"},
		{"podAnnotations key", goodPrimary + "podAnnotations: {\"-x\": y}\n", `v.yaml:10: podAnnotations.-x: "-x" is not an annotation key`},
		{"serviceAccountName", goodPrimary + "serviceAccountName: Backup_SA\n", `v.yaml:10: serviceAccountName: "Backup_SA" is not a ServiceAccount name`},
		{"affinity unknown field", goodPrimary + "affinity: {nodeAfinity: {}}\n", "v.yaml:10: affinity.nodeAfinity: unknown field (known: nodeAffinity, podAffinity, podAntiAffinity)"},
		{"affinity wrong type", goodPrimary + "affinity:\n  podAntiAffinity:\n    preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: heavy\n",
			`v.yaml:13: affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be a whole number, not "heavy"`},
		{"affinity weight", goodPrimary + "affinity:\n  podAntiAffinity:\n    preferredDuringSchedulingIgnoredDuringExecution:\n      - {weight: 500, podAffinityTerm: {topologyKey: k}}\n",
			"v.yaml:13: affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: 500 is not from 1 to 100"},
		{"affinity no topologyKey", goodPrimary + "affinity:\n  podAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      - {labelSelector: {matchLabels: {a: b}}}\n",
			"v.yaml:13: affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: missing"},
		{"affinity operator", goodPrimary + "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n        - matchExpressions: [{key: a, operator: Is, values: [b]}]\n",
			`v.yaml:14: affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: "Is" is not In, NotIn, Exists, DoesNotExist, Gt or Lt`},
		{"affinity In without values", goodPrimary + "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n        - matchExpressions: [{key: a, operator: In}]\n",
			"matchExpressions[0].values: empty: operator In needs values"},
		{"privileged", goodPrimary + "securityContext: {privileged: true}\n", "v.yaml:10: securityContext.privileged: true is refused"},
		{"writable root", goodPrimary + "securityContext: {readOnlyRootFilesystem: false}\n", "v.yaml:10: securityContext.readOnlyRootFilesystem: false is refused"},
		{"capabilities", goodPrimary + "securityContext: {capabilities: {add: [NET_ADMIN]}}\n", "v.yaml:10: securityContext.capabilities: not settable"},
		{"root pod", goodPrimary + "podSecurityContext: {runAsUser: 0}\n", "v.yaml:10: podSecurityContext.runAsUser: 0 (root) is refused"},
		{"pod runAsNonRoot false", goodPrimary + "podSecurityContext: {runAsNonRoot: false}\n", "v.yaml:10: podSecurityContext.runAsNonRoot: false is refused"},
		{"securityContext unknown field", goodPrimary + "securityContext: {readOnlyRoot: true}\n", "v.yaml:10: securityContext.readOnlyRoot: unknown field (known: allowPrivilegeEscalation,"},
		{"freeze at dr", goodDR + "freeze: {mysql: {user: root, passwordSecret: {name: pw, key: password}}}\n", "v.yaml:9: freeze: only a primary site has the freeze and unfreeze jobs"},
		{"freeze without user", goodPrimary + "freeze: {mysql: {passwordSecret: {name: pw, key: password}}}\n", "v.yaml:10: freeze.mysql.user: missing"},
		{"freeze mongo without mongo", goodPrimary + "freeze: {mongo: {uriSecret: {name: m, key: uri}}}\n", "v.yaml:10: freeze.mongo: given without mongo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseValues(strings.NewReader(tc.yaml), "v.yaml")
			var ce *config.Error
			if err == nil || !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q does not contain %q on one line", err, tc.want)
			}
		})
	}
}
