package backup

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/slipwayci/slipway/internal/config"
)

// Values describe the CronJobs of one site (examples/backup/*.yaml).
type Values struct {
	// Role is "primary" (create, prune; suspended: final, freeze, unfreeze)
	// or "dr" (restore, status).
	Role      string `yaml:"role"`
	Site      string `yaml:"site"`
	Namespace string `yaml:"namespace"`
	// Name prefixes the CronJobs' names (default "slipway-backup").
	Name string `yaml:"name"`
	// Image must be pinned by digest: repo@sha256:...
	Image    string    `yaml:"image"`
	Command  []string  `yaml:"command"`
	Schedule Schedules `yaml:"schedule"`
	TimeZone string    `yaml:"timeZone"`
	S3       S3Values  `yaml:"s3"`
	MySQL    *struct {
		Host           string    `yaml:"host"`
		Port           int       `yaml:"port"`
		User           string    `yaml:"user"`
		PasswordSecret SecretRef `yaml:"passwordSecret"`
		Databases      []string  `yaml:"databases"`
	} `yaml:"mysql"`
	Mongo *struct {
		URISecret      SecretRef `yaml:"uriSecret"`
		Databases      []string  `yaml:"databases"`
		NoIndexRestore bool      `yaml:"noIndexRestore"`
	} `yaml:"mongo"`
	Encryption struct {
		Recipients     []string   `yaml:"recipients"`
		IdentitySecret *SecretRef `yaml:"identitySecret"`
	} `yaml:"encryption"`
	Compression string `yaml:"compression"`
	Retention   Policy `yaml:"retention"`
	// MaxAge is the freshness check's limit at the DR site (default 26h).
	MaxAge    string `yaml:"maxAge"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	BackoffLimit            *int32 `yaml:"backoffLimit"`
	ActiveDeadlineSeconds   *int64 `yaml:"activeDeadlineSeconds"`
	SuccessfulJobsHistory   *int32 `yaml:"successfulJobsHistory"`
	FailedJobsHistory       *int32 `yaml:"failedJobsHistory"`
	ServiceAccountName      string `yaml:"serviceAccountName"`
	TTLSecondsAfterFinished *int32 `yaml:"ttlSecondsAfterFinished"`

	// Where and how every job's pod runs, in Kubernetes' own field names and
	// types: decoded strictly, checked, and passed through as written.
	NodeSelector map[string]string   `yaml:"nodeSelector"`
	Tolerations  []corev1.Toleration `yaml:"tolerations"`
	Affinity     *corev1.Affinity    `yaml:"affinity"`
	// HostNetwork runs the pods in the node's network namespace (the test
	// env's real node reaches its databases on the host's 127.0.0.1).
	HostNetwork    bool              `yaml:"hostNetwork"`
	DNSPolicy      string            `yaml:"dnsPolicy"`
	PodLabels      map[string]string `yaml:"podLabels"`
	PodAnnotations map[string]string `yaml:"podAnnotations"`
	// PodSecurityContext and SecurityContext change fields of the defaults
	// (non-root uid 65532, read-only root filesystem, no privilege
	// escalation, every capability dropped); weakening those is refused.
	PodSecurityContext *corev1.PodSecurityContext `yaml:"podSecurityContext"`
	SecurityContext    *corev1.SecurityContext    `yaml:"securityContext"`

	// Freeze holds the admin credentials of the primary's freeze and
	// unfreeze jobs (default: mysql.user and mongo.uriSecret).
	Freeze *FreezeValues `yaml:"freeze"`
}

// FreezeValues are the credentials backup freeze and unfreeze use: an admin
// of the MySQL server (SET GLOBAL read_only, CREATE USER, KILL), and the
// MongoDB URI.
type FreezeValues struct {
	MySQL *struct {
		User           string    `yaml:"user"`
		PasswordSecret SecretRef `yaml:"passwordSecret"`
	} `yaml:"mysql"`
	Mongo *struct {
		URISecret SecretRef `yaml:"uriSecret"`
	} `yaml:"mongo"`
}

// Schedules are cron expressions per job.
type Schedules struct {
	Create  string `yaml:"create"`
	Prune   string `yaml:"prune"`
	Restore string `yaml:"restore"`
	// Status is the DR site's freshness check (default hourly).
	Status string `yaml:"status"`
}

// S3Values locate the bucket; the keys come from a Secret.
type S3Values struct {
	Endpoint          string     `yaml:"endpoint"`
	Region            string     `yaml:"region"`
	Bucket            string     `yaml:"bucket"`
	Prefix            string     `yaml:"prefix"`
	CredentialsSecret string     `yaml:"credentialsSecret"` // keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
	CASecret          *SecretRef `yaml:"caSecret"`
}

// SecretRef names one key of a Kubernetes Secret.
type SecretRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

var (
	digestRef  = regexp.MustCompile(`^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$`)
	dnsLabel   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	secretName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,252}$`)
	cronFields = regexp.MustCompile(`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$`)
)

var valuesOptions = []config.Option{
	config.MaxBytes(1 << 20),
	config.EmptyHint("it needs role, site, namespace, image, schedule, s3, mysql or mongo, and resources (see examples/backup/)"),
}

// valuesNames names the retention options as a values file writes them.
var valuesNames = Names{"Policy.Last": "last", "Policy.Daily": "daily", "Policy.Weekly": "weekly", "Policy.Monthly": "monthly"}

// LoadValues reads and checks the values file at path (see ParseValues).
func LoadValues(path string) (*Values, error) {
	var v Values
	doc, err := config.DecodeFile(path, &v, valuesOptions...)
	return v.checked(doc, err)
}

// ParseValues decodes and checks a values file strictly: unknown fields,
// wrong types and bad values are errors that read FILE:LINE: field: problem.
func ParseValues(r io.Reader, file string) (*Values, error) {
	var v Values
	doc, err := config.Decode(r, file, &v, valuesOptions...)
	return v.checked(doc, err)
}

func (v *Values) checked(doc *config.Doc, err error) (*Values, error) {
	if err != nil {
		return nil, err
	}
	if v.Name == "" {
		v.Name = "slipway-backup"
	}
	if len(v.Command) == 0 {
		v.Command = []string{"backup"}
	}
	bad := func(field, format string, args ...any) error {
		e := doc.Errorf(field, format, args...)
		if e.Line == 0 { // a missing top-level field: point at the document
			e.Line = doc.Root.Line
		}
		return e
	}
	for _, check := range []func(badFunc) error{v.checkSite, v.checkS3, v.checkDatabases, v.checkEncryption, v.checkSchedule, v.checkResources,
		v.checkPod, v.checkFreeze} {
		if err := check(bad); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// badFunc reports a bad value at a field of the values file.
type badFunc func(field, format string, args ...any) error

func (v *Values) checkSite(bad badFunc) error {
	switch {
	case v.Role != "primary" && v.Role != "dr":
		return bad("role", "%q is not primary or dr", v.Role)
	case !dnsLabel.MatchString(v.Site):
		return bad("site", "%q is not a lowercase DNS label", v.Site)
	case !dnsLabel.MatchString(v.Namespace):
		return bad("namespace", "%q is not a lowercase DNS label", v.Namespace)
	case len(v.Name) > 40 || !dnsLabel.MatchString(v.Name):
		return bad("name", "%q is not a lowercase DNS label of at most 40 characters", v.Name)
	case !digestRef.MatchString(v.Image):
		return bad("image", "%q is not pinned by digest (want repository@sha256:<64 hex>)", v.Image)
	case v.Compression != "" && checkCompression(v.Compression) != nil:
		return bad("compression", "%q is not zstd or gzip", v.Compression)
	}
	return nil
}

func (v *Values) checkS3(bad badFunc) error {
	switch {
	case v.S3.Bucket == "":
		return bad("s3.bucket", "missing")
	case v.S3.CredentialsSecret == "" || !dnsLabel.MatchString(v.S3.CredentialsSecret):
		return bad("s3.credentialsSecret", "%q is not a Secret name (it must hold AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", v.S3.CredentialsSecret)
	case v.S3.Prefix != "" && !strings.HasSuffix(v.S3.Prefix, "/"):
		return bad("s3.prefix", "%q must end in \"/\"", v.S3.Prefix)
	case v.S3.Endpoint != "" && !strings.HasPrefix(v.S3.Endpoint, "http://") && !strings.HasPrefix(v.S3.Endpoint, "https://"):
		return bad("s3.endpoint", "%q is not an http(s) URL", v.S3.Endpoint)
	case v.S3.CASecret != nil:
		return checkRef(v.S3.CASecret, "s3.caSecret", bad)
	}
	return nil
}

func (v *Values) checkDatabases(bad badFunc) error {
	if v.MySQL == nil && v.Mongo == nil {
		return bad("mysql", "neither mysql nor mongo is configured: nothing to back up")
	}
	if my := v.MySQL; my != nil {
		switch {
		case my.Host == "":
			return bad("mysql.host", "missing")
		case my.User == "":
			return bad("mysql.user", "missing")
		case my.Port < 0 || my.Port > 65535:
			return bad("mysql.port", "%d is not a port (1-65535)", my.Port)
		}
		if err := checkRef(&my.PasswordSecret, "mysql.passwordSecret", bad); err != nil {
			return err
		}
		if err := v.checkNames("mysql.databases", my.Databases, checkMySQLName, bad); err != nil {
			return err
		}
	}
	if mg := v.Mongo; mg != nil {
		if err := checkRef(&mg.URISecret, "mongo.uriSecret", bad); err != nil {
			return err
		}
		return v.checkNames("mongo.databases", mg.Databases, checkMongoName, bad)
	}
	return nil
}

// checkNames checks a list of database names; the primary needs one at least.
func (v *Values) checkNames(field string, dbs []string, check func(string) error, bad badFunc) error {
	if v.Role == "primary" && len(dbs) == 0 {
		return bad(field, "no database listed")
	}
	for i, db := range dbs {
		if err := check(db); err != nil {
			return bad(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
	}
	return nil
}

func (v *Values) checkEncryption(bad badFunc) error {
	for i, r := range v.Encryption.Recipients {
		if _, err := readRecipients([]string{r}, nil); err != nil || !strings.HasPrefix(r, "age1") {
			return bad(fmt.Sprintf("encryption.recipients[%d]", i), "%q is not an age1... public key", r)
		}
	}
	if v.Encryption.IdentitySecret != nil {
		return checkRef(v.Encryption.IdentitySecret, "encryption.identitySecret", bad)
	}
	return nil
}

func (v *Values) checkSchedule(bad badFunc) error {
	if v.Role == "dr" {
		if v.Schedule.Status == "" {
			v.Schedule.Status = "0 * * * *"
		}
		if v.MaxAge == "" {
			v.MaxAge = "26h"
		}
		if d, err := time.ParseDuration(v.MaxAge); err != nil || d <= 0 {
			return bad("maxAge", "%q is not a positive duration (e.g. 26h)", v.MaxAge)
		}
	} else if v.MaxAge != "" || v.Schedule.Status != "" {
		return bad("maxAge", "only a dr site has the freshness check (maxAge, schedule.status)")
	}
	jobs := [][2]string{{"restore", v.Schedule.Restore}, {"status", v.Schedule.Status}}
	if v.Role == "primary" {
		jobs = [][2]string{{"create", v.Schedule.Create}, {"prune", v.Schedule.Prune}}
	}
	for _, job := range jobs {
		if !cronFields.MatchString(job[1]) {
			return bad("schedule."+job[0], "%q is not a cron schedule", job[1])
		}
	}
	if v.Role == "primary" {
		if err := v.Retention.validate(valuesNames); err != nil {
			return bad("retention", "%v", err)
		}
	}
	return nil
}

func (v *Values) checkResources(bad badFunc) error {
	for _, group := range []struct {
		field string
		m     map[string]string
	}{{"resources.requests", v.Resources.Requests}, {"resources.limits", v.Resources.Limits}} {
		for _, k := range slices.Sorted(maps.Keys(group.m)) {
			if k != "cpu" && k != "memory" && k != "ephemeral-storage" {
				return bad(group.field+"."+k, "unknown resource (cpu, memory, ephemeral-storage)")
			}
			if _, err := resource.ParseQuantity(group.m[k]); err != nil {
				return bad(group.field+"."+k, "%q is not a quantity", group.m[k])
			}
		}
	}
	if len(v.Resources.Limits) == 0 {
		return bad("resources.limits", "missing: every backup job needs cpu and memory limits")
	}
	return nil
}

func checkRef(r *SecretRef, field string, bad badFunc) error {
	if !dnsLabel.MatchString(r.Name) && !secretName.MatchString(r.Name) {
		return bad(field+".name", "%q is not a Secret name", r.Name)
	}
	if r.Key == "" {
		return bad(field+".key", "missing")
	}
	return nil
}

// RenderCronJobs returns the CronJobs for the values' role as a YAML stream.
func RenderCronJobs(v *Values) ([]byte, error) {
	jobs := CronJobs(v)
	var buf bytes.Buffer
	for i, j := range jobs {
		b, err := sigsyaml.Marshal(j)
		if err != nil {
			return nil, fmt.Errorf("encoding CronJob %s: %w", j.Name, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// never is the schedule of the jobs that run only when triggered (kubectl
// create job --from=cronjob/NAME, deploy-k8s run-job): they are suspended,
// and February 31st never comes, should one be resumed by mistake.
const never = "0 0 31 2 *"

// job is one CronJob of a site: its verb (the name's suffix), schedule
// (never: suspended, run when triggered) and arguments, and what it reads:
// the databases (dbs), as their admin (admin: freeze, unfreeze), the age
// identity (identity).
type job struct {
	verb, schedule string
	args           []string
	dbs, admin     bool
	identity       bool
}

// CronJobs builds the CronJob objects. The primary: create and prune on
// their schedules; final (create --verify), freeze and unfreeze suspended,
// for the failover to trigger. The DR site: restore and the freshness
// check (status), both scheduled; the failover triggers them too.
func CronJobs(v *Values) []*batchv1.CronJob {
	var jobs []job
	if v.Role == "primary" {
		args := []string{"create", "--site=" + v.Site}
		if v.Compression != "" {
			args = append(args, "--compression="+v.Compression)
		}
		for _, r := range v.Encryption.Recipients {
			args = append(args, "--age-recipient="+r)
		}
		if v.MySQL != nil {
			for _, db := range v.MySQL.Databases {
				args = append(args, "--mysql-database="+db)
			}
		}
		if v.Mongo != nil {
			for _, db := range v.Mongo.Databases {
				args = append(args, "--mongo-database="+db)
			}
		}
		pr := []string{"prune"}
		for _, kv := range []struct {
			f string
			n int
		}{{"last", v.Retention.Last}, {"daily", v.Retention.Daily}, {"weekly", v.Retention.Weekly}, {"monthly", v.Retention.Monthly}} {
			if kv.n > 0 {
				pr = append(pr, fmt.Sprintf("--keep-%s=%d", kv.f, kv.n))
			}
		}
		jobs = []job{
			// A frozen primary (failed over) adds no backup for the DR
			// site's scheduled restore to take over its new data.
			{verb: "create", schedule: v.Schedule.Create, args: append(slices.Clip(args), "--skip-frozen"), dbs: true},
			{verb: "prune", schedule: v.Schedule.Prune, args: pr},
			// The failover's step 3: the final backup, then verified, in one pod.
			{verb: "final", schedule: never, args: append(slices.Clip(args), "--verify"), dbs: true},
			{verb: "freeze", schedule: never, args: []string{"freeze", "--site=" + v.Site}, dbs: true, admin: true},
			{verb: "unfreeze", schedule: never, args: []string{"unfreeze", "--site=" + v.Site}, dbs: true, admin: true},
		}
	} else {
		args := []string{"restore", "--latest"}
		if v.Mongo != nil && v.Mongo.NoIndexRestore {
			args = append(args, "--mongo-no-index-restore")
		}
		// The freshness check reads the DR servers' journals too: it fails while
		// a restore failed, is interrupted or never ran (backup status --site).
		status := []string{"status", "--site=" + v.Site, "--max-age=" + v.MaxAge}
		jobs = []job{
			{verb: "restore", schedule: v.Schedule.Restore, args: args, dbs: true, identity: true},
			{verb: "status", schedule: v.Schedule.Status, args: status, dbs: true},
		}
	}
	out := make([]*batchv1.CronJob, len(jobs))
	for i, j := range jobs {
		out[i] = v.cronJob(j)
	}
	return out
}

func secretEnv(name string, ref SecretRef) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}, Key: ref.Key}}}
}

func (v *Values) cronJob(j job) *batchv1.CronJob {
	name := v.Name + "-" + j.verb
	labels := map[string]string{
		"app.kubernetes.io/name":       "slipway-backup",
		"app.kubernetes.io/component":  j.verb,
		"app.kubernetes.io/managed-by": "slipway",
		"slipway.dev/site":             v.Site,
	}
	podLabels := maps.Clone(labels)
	maps.Copy(podLabels, v.PodLabels)
	podSC, sc := podDefaults()
	overlay(podSC, v.PodSecurityContext)
	overlay(sc, v.SecurityContext)
	env, mounts, vols := v.inputs(j)
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for k, q := range v.Resources.Requests {
		res.Requests[corev1.ResourceName(k)] = resource.MustParse(q)
	}
	for k, q := range v.Resources.Limits {
		res.Limits[corev1.ResourceName(k)] = resource.MustParse(q)
	}
	backoff := v.BackoffLimit
	if backoff == nil {
		backoff = ptr(int32(1))
	}
	hist := func(p *int32, d int32) *int32 {
		if p == nil {
			return ptr(d)
		}
		return p
	}
	spec := batchv1.CronJobSpec{
		Schedule:                   j.schedule,
		ConcurrencyPolicy:          batchv1.ForbidConcurrent,
		StartingDeadlineSeconds:    ptr(int64(3600)),
		SuccessfulJobsHistoryLimit: hist(v.SuccessfulJobsHistory, 3),
		FailedJobsHistoryLimit:     hist(v.FailedJobsHistory, 3),
		JobTemplate: batchv1.JobTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: batchv1.JobSpec{
				BackoffLimit:            backoff,
				ActiveDeadlineSeconds:   v.ActiveDeadlineSeconds,
				TTLSecondsAfterFinished: v.TTLSecondsAfterFinished,
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: v.PodAnnotations},
					Spec: corev1.PodSpec{
						RestartPolicy:                corev1.RestartPolicyNever,
						ServiceAccountName:           v.ServiceAccountName,
						AutomountServiceAccountToken: ptr(false),
						SecurityContext:              podSC,
						NodeSelector:                 v.NodeSelector,
						Tolerations:                  v.Tolerations,
						Affinity:                     v.Affinity,
						HostNetwork:                  v.HostNetwork,
						DNSPolicy:                    corev1.DNSPolicy(v.DNSPolicy),
						Volumes:                      vols,
						Containers: []corev1.Container{{
							Name:            j.verb,
							Image:           v.Image,
							Command:         v.Command,
							Args:            j.args,
							Env:             env,
							VolumeMounts:    mounts,
							Resources:       res,
							SecurityContext: sc,
						}},
					},
				},
			},
		},
	}
	// Explicit either way: a deploy puts back a scheduled job suspended by
	// hand, and the failover's jobs stay suspended.
	spec.Suspend = ptr(j.schedule == never)
	if v.TimeZone != "" {
		spec.TimeZone = ptr(v.TimeZone)
	}
	return &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.Namespace, Labels: labels},
		Spec:       spec,
	}
}

// inputs are what a job's container reads: its environment (credentials by
// secretKeyRef), and the volumes it mounts (an in-memory /tmp and the Secret
// files). j.dbs adds the databases' connection (as their admin with
// j.admin), j.identity the age identity.
func (v *Values) inputs(j job) (env []corev1.EnvVar, mounts []corev1.VolumeMount, vols []corev1.Volume) {
	env = []corev1.EnvVar{
		{Name: "SLIPWAY_S3_BUCKET", Value: v.S3.Bucket},
		{Name: "SLIPWAY_LOG_FORMAT", Value: "json"},
		secretEnv("AWS_ACCESS_KEY_ID", SecretRef{Name: v.S3.CredentialsSecret, Key: "AWS_ACCESS_KEY_ID"}),
		secretEnv("AWS_SECRET_ACCESS_KEY", SecretRef{Name: v.S3.CredentialsSecret, Key: "AWS_SECRET_ACCESS_KEY"}),
	}
	add := func(n, val string) {
		if val != "" {
			env = append(env, corev1.EnvVar{Name: n, Value: val})
		}
	}
	add("SLIPWAY_S3_ENDPOINT", v.S3.Endpoint)
	add("SLIPWAY_S3_REGION", v.S3.Region)
	add("SLIPWAY_S3_PREFIX", v.S3.Prefix)
	// The root filesystem is read-only; mongodump's private config file
	// (the URI) goes to a small in-memory /tmp.
	mounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	vols = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Mi"))}}}}
	mountSecret := func(vol string, ref SecretRef, dir string) string {
		vols = append(vols, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: ref.Name, DefaultMode: ptr(int32(0o400)), Items: []corev1.KeyToPath{{Key: ref.Key, Path: ref.Key}}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: dir, ReadOnly: true})
		return dir + "/" + ref.Key
	}
	if v.S3.CASecret != nil {
		add("SLIPWAY_S3_CA_FILE", mountSecret("s3-ca", *v.S3.CASecret, "/etc/slipway/s3-ca"))
	}
	if j.dbs && v.MySQL != nil {
		user, pw := v.MySQL.User, v.MySQL.PasswordSecret
		if j.admin && v.Freeze != nil && v.Freeze.MySQL != nil {
			user, pw = v.Freeze.MySQL.User, v.Freeze.MySQL.PasswordSecret
		}
		add("SLIPWAY_MYSQL_HOST", v.MySQL.Host)
		if v.MySQL.Port != 0 {
			add("SLIPWAY_MYSQL_PORT", strconv.Itoa(v.MySQL.Port))
		}
		add("SLIPWAY_MYSQL_USER", user)
		env = append(env, secretEnv("SLIPWAY_MYSQL_PASSWORD", pw))
	}
	if j.dbs && v.Mongo != nil {
		uri := v.Mongo.URISecret
		if j.admin && v.Freeze != nil && v.Freeze.Mongo != nil {
			uri = v.Freeze.Mongo.URISecret
		}
		env = append(env, secretEnv("SLIPWAY_MONGO_URI", uri))
	}
	if j.identity && v.Encryption.IdentitySecret != nil {
		add("SLIPWAY_AGE_IDENTITY_FILE", mountSecret("age-identity", *v.Encryption.IdentitySecret, "/etc/slipway/age"))
	}
	return env, mounts, vols
}

func ptr[T any](v T) *T { return &v }
