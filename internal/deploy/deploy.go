// Package deploy is the deploy-k8s stage: it renders a platform's kustomize
// tree, pins every image to the digest push-registry recorded, applies it with
// server-side apply into the namespace its branch owns, prunes what the change
// removed (an ApplySet inventory), waits for the rollout, runs one-off Jobs,
// and records each deploy so it can be rolled back.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
	"github.com/slipwayci/slipway/internal/zuul"
)

// Options configure every deploy-k8s command. Fields a command does not use
// are ignored. The context bounds the whole command: the rollout wait and
// the jobs end with it (the revision is still recorded).
type Options struct {
	// Kubeconfig is the kubeconfig file; empty means KUBECONFIG/~/.kube/config.
	Kubeconfig string
	// Context selects a kubeconfig context; empty means the current one.
	Context string
	// Branch is the platform branch (e.g. platform/acme); BranchPrefix (default
	// DefaultBranchPrefix) and NamespacePrefix shape its namespace (NamespaceFor).
	Branch          string
	BranchPrefix    string
	NamespacePrefix string
	// AdoptNamespace lets a deploy take over an existing namespace no branch owns.
	AdoptNamespace bool

	// Manifests are kustomize directories, directories of manifests or
	// files, deployed together as one desired state (one ApplySet, one
	// revision): the platform's tree and extra manifests such as the
	// backup CronJobs.
	Manifests []string
	// SecretsFile is a 0600 YAML file {secrets: {NAME: {KEY: VALUE}}}
	// whose Secrets are applied with the manifests; their values are never
	// recorded (ReadSecretsFile).
	SecretsFile string

	// Standby deploys the site as a standby: the application workloads
	// (ScaleDown) get 0 replicas, their HorizontalPodAutoscalers are left
	// out, and Jobs are not run; data stores keep their replicas.
	Standby bool
	// ScaleDown selects the application workloads (default
	// DefaultScaleDown): name globs, or LABEL=VALUE.
	ScaleDown []string
	// PushResult is push-registry's result file; Region picks the registry.
	PushResult string
	Region     string
	// PullAddress picks the registry address images are pinned to: PullNode
	// (default: where the region's nodes pull, e.g. localhost:5000) or PullCI
	// (where CI pushed, for clusters that pull from a shared registry).
	PullAddress string
	// AllowImages are path.Match patterns of repositories that may be
	// deployed without being in the push result.
	AllowImages []string
	// AllowClusterScoped lets the manifests hold cluster-scoped objects.
	AllowClusterScoped bool

	// NoPrune keeps objects the manifests no longer contain.
	NoPrune bool
	// NoWait skips waiting for workloads.
	NoWait bool
	// Jobs are Job templates to run after the rollout (Tutor's init jobs).
	Jobs []string
	// CronJobs are live CronJobs of the namespace whose jobTemplate RunJob
	// runs once each, in order (instead of Jobs): how a failover runs the
	// backup CronJobs' steps in the cluster.
	CronJobs []string
	// JobCleanup is always, on-success (default) or never.
	JobCleanup string
	// KeepRevisions is how many revision records to keep (default 10).
	KeepRevisions int
	// ToRevision makes rollback return to that revision instead of the
	// previous good one.
	ToRevision int
	// Expect makes Status require the site to be in this mode (ModeActive
	// or ModeStandby); empty accepts either.
	Expect string
	// Mode is the mode SetMode puts the site in.
	Mode string

	// Zuul is recorded in the result.
	Zuul *result.ZuulRef
	// Change describes what is deployed (e.g. "change 123,4"), recorded with
	// the revision.
	Change string

	// UserAgent is sent to the API server.
	UserAgent string
	// Log receives logs (default: discard); Progress reports waits;
	// Out receives job logs and diff output.
	Log      *slog.Logger
	Progress *progress.Printer
	Out      io.Writer
}

// OptionError is an error that another value of an option avoids. Option
// names the Options field (Region, AdoptNamespace...), so that a command
// line can say which of its flags sets it.
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// optionErrorf returns a user error that option resolves.
func optionErrorf(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: usererr.Errorf(format, args...)}
}

func (o *Options) defaults() error {
	if o.BranchPrefix == "" {
		o.BranchPrefix = DefaultBranchPrefix
	}
	if o.JobCleanup == "" {
		o.JobCleanup = CleanupOnSuccess
	}
	switch o.JobCleanup {
	case CleanupAlways, CleanupOnSuccess, CleanupNever:
	default:
		return optionErrorf("JobCleanup", "job clean-up %q: want always, on-success or never", o.JobCleanup)
	}
	if o.PullAddress == "" {
		o.PullAddress = PullNode
	}
	if o.KeepRevisions <= 0 {
		o.KeepRevisions = DefaultKeepRevisions
	}
	if o.Log == nil {
		o.Log = logging.Discard()
	}
	if o.Progress == nil {
		o.Progress = progress.Discard()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.UserAgent == "" {
		o.UserAgent = "slipway-deploy-k8s"
	}
	return nil
}

// target connects to the cluster and returns namespace ns there.
func (o *Options) target(ctx context.Context, ns string) (*target, error) {
	c, err := connect(ctx, o.Kubeconfig, o.Context, o.UserAgent)
	if err != nil {
		return nil, err
	}
	return newTarget(c, ns, o.Log), nil
}

// plan is a rendered, pinned, validated desired state.
type plan struct {
	// apply is what is applied; recorded, what a revision records of it:
	// the same objects, but a standby's applications as the manifests
	// have them (not scaled to 0) and their autoscalers too, so a
	// revision can be deployed again in either mode.
	apply     []*unstructured.Unstructured
	recorded  []*unstructured.Unstructured
	templates []*unstructured.Unstructured
	mappings  map[*unstructured.Unstructured]*meta.RESTMapping
	images    []result.DeployedImage
	// pullAddress is the address images are pinned to (empty: no push result).
	pullAddress string
	hash        string
	site
}

// site is what a plan holds besides its manifests: the mode it deploys
// the site in, which workloads are the applications, and the Secrets of
// the secrets file (applied, never recorded).
type site struct {
	// mode is ModeActive or ModeStandby.
	mode string
	// apps are the objectIDs of the application workloads (scaled to 0
	// in standby).
	apps []string
	// secrets are the names of the secrets file's Secrets; fromFile, their
	// objectIDs, marks the applied objects a record leaves out; secretsHash
	// is the hash of their content, which the revision records instead.
	secrets     []string
	fromFile    map[string]bool
	secretsHash string
}

// state is what a revision of p records besides its manifests.
func (p *plan) state(branch string) revisionState {
	return revisionState{Branch: branch, ManifestHash: p.hash, Images: p.images, PullAddress: p.pullAddress,
		Mode: p.mode, Apps: p.apps, Secrets: p.secrets, SecretsHash: p.secretsHash}
}

// all returns applied objects and templates, as a revision records them:
// without the secrets file's Secrets, whose values are never recorded.
func (p *plan) all() []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(p.recorded)+len(p.templates))
	for _, u := range p.recorded {
		if !p.fromFile[objectID(u)] {
			out = append(out, u)
		}
	}
	return append(out, p.templates...)
}

// kinds returns the group-kinds of the applied objects (and Secret when
// the secrets file's Secrets are kept).
func (p *plan) kinds() map[schema.GroupKind]bool {
	gks := map[schema.GroupKind]bool{}
	for _, u := range p.apply {
		gks[u.GroupVersionKind().GroupKind()] = true
	}
	if len(p.secrets) > 0 {
		gks[schema.GroupKind{Kind: "Secret"}] = true
	}
	return gks
}

// rendered is the desired state read from the manifests, before it is
// checked against the cluster.
type rendered struct {
	objs   []*unstructured.Unstructured
	images []result.DeployedImage
	site
}

// render reads the manifests and the secrets file, pins the images and
// scales a standby's applications down; it needs no cluster.
func render(opts *Options) (*rendered, error) {
	if len(opts.Manifests) == 0 {
		return nil, optionErrorf("Manifests", "no manifests given: name a kustomize directory, a directory of manifests or a manifest file")
	}
	scale, err := ParseScaleDown(opts.ScaleDown)
	if err != nil {
		return nil, err
	}
	var secrets []*unstructured.Unstructured
	var secretsHash string
	if opts.SecretsFile != "" {
		// Read first: a bad secrets file is refused before anything else.
		if secrets, secretsHash, err = ReadSecretsFile(opts.SecretsFile); err != nil {
			return nil, err
		}
	}
	var objs []*unstructured.Unstructured
	for _, path := range opts.Manifests {
		got, err := Render(path)
		if err != nil {
			return nil, err
		}
		// The namespace a kustomization sets for its objects (Tutor's
		// K8S_NAMESPACE) is replaced by the branch's.
		if ns := manifestNamespace(path); ns != "" {
			for _, u := range got {
				if u.GetNamespace() == ns {
					u.SetNamespace("")
				}
			}
		}
		objs = append(objs, got...)
	}
	var push *result.PushResult
	if opts.PushResult != "" {
		push = &result.PushResult{}
		if err := result.ReadFile(opts.PushResult, push); err != nil {
			return nil, usererr.Wrap(err)
		}
		if opts.Region == "" {
			return nil, optionErrorf("Region", "no region given: say which region's registry of the push result the cluster pulls from")
		}
	}
	pinner, err := NewPinner(push, opts.Region, opts.PullAddress, opts.AllowImages)
	if err != nil {
		return nil, err
	}
	images, err := pinner.Pin(objs)
	if err != nil {
		return nil, err
	}
	for _, img := range images {
		opts.Log.Info("pinned", "image", img.Reference, "to", img.Pinned, "address", opts.PullAddress)
	}
	registerSecrets(objs)
	r := &rendered{images: images, site: site{mode: ModeActive, secretsHash: secretsHash}}
	if opts.Standby {
		r.mode = ModeStandby
	}
	r.objs, r.apps = objs, scale.appsOf(objs)
	if len(secrets) > 0 {
		r.fromFile = map[string]bool{}
		for _, u := range secrets {
			for _, m := range objs {
				if m.GetKind() == "Secret" && m.GroupVersionKind().Group == "" && m.GetName() == u.GetName() {
					return nil, usererr.Errorf("Secret %s is in the manifests and in the secrets file %s: keep it in one of them", u.GetName(), opts.SecretsFile)
				}
			}
			r.secrets = append(r.secrets, u.GetName())
			r.fromFile[objectID(u)] = true
		}
		r.objs = append(r.objs, secrets...)
	}
	return r, nil
}

// registerSecrets keeps the values of Secrets in the manifests out of every
// log line and error message.
func registerSecrets(objs []*unstructured.Unstructured) {
	for _, u := range objs {
		if u.GetKind() != "Secret" || u.GroupVersionKind().Group != "" {
			continue
		}
		for _, field := range []string{"data", "stringData"} {
			m, _, _ := unstructured.NestedStringMap(u.Object, field)
			for _, v := range m {
				logging.Register(v)
			}
		}
	}
}

// place validates objs against the cluster and builds the plan.
func (t *target) place(objs []*unstructured.Unstructured, images []result.DeployedImage, opts *Options, s site) (*plan, error) {
	objs, mappings, err := placeObjects(objs, t.c.mapper, t.ns, opts.AllowClusterScoped, opts.Log)
	if err != nil {
		return nil, err
	}
	p := &plan{mappings: mappings, images: images, site: s}
	scaled := p.scaledDown()
	for _, u := range objs {
		if isJobTemplate(u) {
			p.templates = append(p.templates, u)
			continue
		}
		lbl := u.GetLabels()
		if lbl == nil {
			lbl = map[string]string{}
		}
		lbl[labelPartOf] = t.id
		u.SetLabels(lbl)
		if err := setHash(u); err != nil {
			return nil, err
		}
		p.recorded = append(p.recorded, u)
		applied, err := standbyCopy(u, scaled, opts.Log)
		switch {
		case err != nil:
			return nil, err
		case applied == nil:
			continue
		case applied != u:
			if err := setHash(applied); err != nil {
				return nil, err
			}
			mappings[applied] = mappings[u]
		}
		p.apply = append(p.apply, applied)
	}
	sortForApply(p.apply)
	sortForApply(p.recorded)
	sortForApply(p.templates)
	if err := checkTemplates(p.templates, opts.Jobs); err != nil {
		return nil, err
	}
	if p.hash, err = manifestHash(p.all()); err != nil {
		return nil, err
	}
	p.hash = p.siteHash(p.hash)
	return p, nil
}

// setHash puts the hash of u's content (without the hash) on u.
func setHash(u *unstructured.Unstructured) error {
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	delete(ann, annHash)
	u.SetAnnotations(ann)
	h, err := hashObject(u)
	if err != nil {
		return err
	}
	ann[annHash] = h
	u.SetAnnotations(ann)
	return nil
}

// prepare renders and pins the manifests, connects and checks them against
// the branch's namespace: what Deploy and Diff share.
func prepare(ctx context.Context, opts *Options) (*target, *plan, error) {
	if err := opts.defaults(); err != nil {
		return nil, nil, err
	}
	ns, err := NamespaceFor(opts.Branch, opts.BranchPrefix, opts.NamespacePrefix)
	if err != nil {
		return nil, nil, err
	}
	r, err := render(opts)
	if err != nil {
		return nil, nil, err
	}
	t, err := opts.target(ctx, ns)
	if err != nil {
		return nil, nil, err
	}
	p, err := t.place(r.objs, r.images, opts, r.site)
	if err != nil {
		return nil, nil, err
	}
	if opts.PushResult != "" {
		p.pullAddress = opts.PullAddress
	}
	return t, p, nil
}

// Deploy renders the manifests, applies them into the branch's namespace,
// prunes, waits, runs the requested jobs and records a revision. After a
// failed rollout or job it returns the result too: it says what was applied.
func Deploy(ctx context.Context, opts Options) (*result.DeployResult, error) {
	t, p, err := prepare(ctx, &opts)
	if err != nil {
		return nil, err
	}
	return t.run(ctx, p, &opts, "deploy", 0)
}

func manifestNamespace(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return kustomizationNamespace(path)
	}
	return ""
}

// history is what the namespace holds of earlier deploys.
type history struct {
	// kinds the ApplySet parent lists.
	kinds []schema.GroupKind
	// revs are the recorded revisions, newest first.
	revs []Revision
}

func (h history) current() *Revision {
	if len(h.revs) == 0 {
		return nil
	}
	return &h.revs[0]
}

// versions returns the object versions of the newest revision that
// recorded them: a revision left deploying has none, and resuming it need
// not re-send what neither it nor anyone else touched since.
func (h history) versions() map[string]string {
	for i := range h.revs {
		if v := h.revs[i].state().ResourceVersions; v != nil {
			return v
		}
	}
	return nil
}

func (t *target) history(ctx context.Context) (history, error) {
	var h history
	var err error
	if _, h.kinds, err = t.parent(ctx); err != nil {
		return h, err
	}
	h.revs, err = t.revisions(ctx)
	return h, err
}

// run applies plan p: everything after rendering and validation. Each step
// can be cut short (kill -9 included) and the same command run again
// finishes the job: the namespace and ApplySet parent are written
// idempotently, the revision is on record as deploying before the first
// object is sent (the rerun resumes it), objects are applied and pruned by
// server-side apply and UID preconditions, and jobs a killed run started are
// taken over, not started twice.
func (t *target) run(ctx context.Context, p *plan, opts *Options, action string, rolledBackTo int) (*result.DeployResult, error) {
	exists, err := t.checkNamespace(ctx, opts.Branch, opts.AdoptNamespace)
	if err != nil {
		return nil, err
	}
	var h history
	if exists {
		if h, err = t.history(ctx); err != nil {
			return nil, err
		}
	}
	if err := t.ensureNamespace(ctx, opts.Branch, exists); err != nil {
		return nil, err
	}
	crashpoint.Hit("deploy.namespace")
	res := &result.DeployResult{Action: action, Branch: opts.Branch, Namespace: t.ns, Zuul: opts.Zuul,
		ManifestHash: p.hash, Images: p.images, PullAddress: p.pullAddress, RolledBackTo: rolledBackTo, Mode: p.mode,
		Objects: []result.DeployedObject{}, Pruned: []result.DeployedObject{}}
	if res.Images == nil {
		res.Images = []result.DeployedImage{}
	}
	pass, err := t.check(ctx, p, h, !exists)
	if err != nil {
		return nil, err
	}
	rev, err := t.begin(ctx, p, opts, h, rolledBackTo)
	if err != nil {
		return nil, err
	}
	keep, err := t.applyAll(ctx, p, pass, res)
	if err == nil {
		// The secrets file's Secrets a rollback does not re-apply (their
		// values are not recorded) stay as they are.
		for _, name := range p.secrets {
			keep[objectID(secretObject(name, nil))] = true
		}
	}
	if err == nil && !opts.NoPrune {
		var pruned []result.DeployedObject
		pruned, err = t.prune(ctx, pass.live, keep)
		res.Pruned = append(res.Pruned, pruned...)
		if err == nil {
			err = t.setParent(ctx, keysOf(p.kinds()))
			crashpoint.Hit("deploy.inventory")
		}
	}
	if err != nil {
		if rev == nil {
			res.Revision = h.current().Number
			return res, err
		}
		res.Revision = rev.Number
		return res, fmt.Errorf("%w (revision %d stays on record as deploying: run the same deploy again to finish it)", err, rev.Number)
	}
	res.Changed = res.Created+res.Configured+len(res.Pruned) > 0
	opts.Log.Info("applied", "namespace", t.ns, "created", res.Created, "configured", res.Configured, "unchanged", res.Unchanged, "pruned", len(res.Pruned))

	var deployErr error
	if !opts.NoWait {
		deployErr = t.waitRollout(ctx, p.apply, p.mappings, p.scaledDown(), opts.Progress)
		crashpoint.Hit("deploy.rollout")
	}
	switch {
	case deployErr != nil:
	case p.mode == ModeStandby && len(opts.Jobs) > 0:
		opts.Log.Info("standby deploy: not running the jobs; they run when the site is deployed active", "namespace", t.ns, "jobs", strings.Join(opts.Jobs, ","))
	default:
		deployErr = t.runJobs(ctx, p.templates, opts, res, rev)
	}
	if err := t.recordRun(ctx, p, opts, h, rev, keep, res, deployErr); err != nil {
		return res, err
	}
	opts.Log.Info("deployed", "namespace", t.ns, "revision", res.Revision, "changed", res.Changed)
	return res, nil
}

// check has the server check every object with a dry run, then lists the
// union of the old and new kinds in the ApplySet parent, so that a deploy
// cut short after this still knows every kind it may have to prune. It
// returns the apply pass, with the members found live before (what prune
// looks at). created says the run made the namespace, which a refused dry
// run removes again.
func (t *target) check(ctx context.Context, p *plan, h history, created bool) (*applyPass, error) {
	union := p.kinds()
	for _, gk := range h.kinds {
		union[gk] = true
	}
	live, err := t.listMembers(ctx, keysOf(union))
	if err != nil {
		return nil, err
	}
	pass := &applyPass{mappings: p.mappings, live: live, recorded: h.versions()}
	// Everything that will be sent is first checked by the server (schema,
	// admission, immutable fields), so bad input changes nothing.
	pass.dryRun = true
	if _, err := t.apply(ctx, p.apply, pass); err != nil {
		if created {
			t.deleteNamespace(ctx)
		}
		return nil, err
	}
	pass.dryRun = false
	if err := t.setParent(ctx, keysOf(union)); err != nil {
		return nil, err
	}
	crashpoint.Hit("deploy.parent")
	return pass, nil
}

// begin puts the revision this run deploys on record, as deploying, before
// anything is applied. It returns nil when the current revision is good and
// already holds these manifests (nothing new to record unless the run
// fails). The current revision still deploying with the same manifests is
// what a killed run of this deploy left: it is resumed. One deploying other
// manifests was cut short and is superseded: it is recorded as failed.
func (t *target) begin(ctx context.Context, p *plan, opts *Options, h history, rolledBackTo int) (*Revision, error) {
	cur := h.current()
	n := 1
	if cur != nil {
		n = cur.Number + 1
		switch {
		case cur.Status == statusGood && cur.ManifestHash == p.hash:
			return nil, nil
		case cur.Status == statusDeploying && cur.ManifestHash == p.hash && cur.RolledBackTo == rolledBackTo:
			opts.Log.Info("resuming the interrupted deploy of a revision", "namespace", t.ns, "revision", cur.Number)
			return cur, nil
		case cur.Status == statusDeploying:
			if err := t.rewrite(ctx, cur, statusFailed, cur.state()); err != nil {
				return nil, err
			}
			opts.Log.Warn("the deploy of a revision was interrupted; recorded it as failed", "namespace", t.ns, "revision", cur.Number)
			crashpoint.Hit("deploy.supersede")
		}
	}
	st := p.state(opts.Branch)
	rev, err := t.record(ctx, n, statusDeploying, opts.Change, rolledBackTo, p.all(), st)
	if err != nil {
		return nil, err
	}
	crashpoint.Hit("deploy.begin")
	return rev, nil
}

// applyAll applies the plan and records in res what each object did. It
// returns the objects applied.
func (t *target) applyAll(ctx context.Context, p *plan, pass *applyPass, res *result.DeployResult) (map[string]bool, error) {
	applied, err := t.apply(ctx, p.apply, pass)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for i, r := range applied {
		keep[r.id] = true
		u := p.apply[i]
		res.Objects = append(res.Objects, result.DeployedObject{Group: u.GroupVersionKind().Group, Kind: u.GetKind(), Name: u.GetName(), Action: r.action})
		switch r.action {
		case "created":
			res.Created++
		case "configured":
			res.Configured++
		default:
			res.Unchanged++
		}
	}
	return keep, nil
}

// recordRun finishes the run's record: rev (begun by begin) becomes good or
// failed. Without rev, the current revision held the same manifests: its
// object versions are refreshed, or, when this run failed, a new failed
// revision is recorded. It returns deployErr, the run's failure, saying how
// it was recorded.
func (t *target) recordRun(ctx context.Context, p *plan, opts *Options, h history, rev *Revision, keep map[string]bool, res *result.DeployResult, deployErr error) error {
	// Recorded even when ctx ended: the record says what is in the namespace.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	st := p.state(opts.Branch)
	if after, err := t.listMembers(rctx, keysOf(p.kinds())); err == nil {
		st.ResourceVersions = map[string]string{}
		for id, m := range after {
			if keep[id] {
				st.ResourceVersions[id] = m.obj.GetResourceVersion()
			}
		}
	}
	status := statusGood
	if deployErr != nil {
		status = statusFailed
	}
	revs := h.revs
	switch cur := h.current(); {
	case rev == nil && deployErr == nil:
		res.Revision = cur.Number
		// A drifted object re-applied (or one a killed run re-applied) has a
		// new version; recording it saves re-sending it next time.
		if st.ResourceVersions != nil && !maps.Equal(st.ResourceVersions, cur.state().ResourceVersions) {
			if err := t.rewrite(rctx, cur, cur.Status, st); err != nil {
				return err
			}
		}
	case rev == nil:
		var err error
		if rev, err = t.record(rctx, cur.Number+1, statusFailed, opts.Change, res.RolledBackTo, p.all(), st); err != nil {
			return errors.Join(deployErr, err)
		}
		revs = append([]Revision{*rev}, revs...)
	default:
		if err := t.rewrite(rctx, rev, status, st); err != nil {
			return errors.Join(deployErr, err)
		}
		if cur == nil || cur.Number != rev.Number {
			revs = append([]Revision{*rev}, revs...)
		}
	}
	crashpoint.Hit("deploy.record")
	t.trimRevisions(rctx, revs, opts.KeepRevisions)
	if rev == nil {
		return nil
	}
	res.Revision = rev.Number
	res.Changed = true
	if deployErr != nil {
		return fmt.Errorf("%w (revision %d recorded as failed; fix and deploy again, or roll back to the previous good revision)", deployErr, rev.Number)
	}
	return nil
}

func keysOf(m map[schema.GroupKind]bool) []schema.GroupKind {
	out := make([]schema.GroupKind, 0, len(m))
	for gk := range m {
		out = append(out, gk)
	}
	return out
}

// ZuulReturn is the zuul_return data that hands later jobs the namespace,
// revision, mode and pinned images of res.
func ZuulReturn(res *result.DeployResult) zuul.Return {
	digests := map[string]string{}
	for _, img := range res.Images {
		digests[img.Reference] = img.Pinned
	}
	return zuul.Return{Vars: map[string]any{"slipway_deploy": map[string]any{
		"namespace": res.Namespace, "revision": res.Revision, "changed": res.Changed,
		"manifest_hash": res.ManifestHash, "images": digests, "mode": res.Mode,
	}}}
}

// Rollback re-applies the previous good revision (or opts.ToRevision) and
// records it as a new revision. The revision's mode comes back with it.
func Rollback(ctx context.Context, opts Options) (*result.DeployResult, error) {
	return reapply(ctx, opts, "rollback", "branch %s was never deployed, nothing to roll back",
		func(revs []Revision) (*Revision, error) { return pickRollback(revs, opts.ToRevision) },
		revisionState.mode)
}

// SetMode re-applies the newest good revision in mode opts.Mode (ModeActive
// or ModeStandby), with the images and manifests it recorded, and records
// it as a new revision; when that revision is current and already in that
// mode nothing changes. It needs neither the manifests nor the push result:
// it is how a failover turns a site standby or active.
func SetMode(ctx context.Context, opts Options) (*result.DeployResult, error) {
	if opts.Mode != ModeActive && opts.Mode != ModeStandby {
		return nil, optionErrorf("Mode", "mode %q: want %s or %s", opts.Mode, ModeActive, ModeStandby)
	}
	return reapply(ctx, opts, "set-mode", "deploy branch %s first", pickCurrent,
		func(revisionState) string { return opts.Mode })
}

// reapply deploys a recorded revision again, which pick chooses, in the
// mode mode gives for its state; action names it in the result. The
// secrets file's Secrets (whose values no record holds) are kept as they
// are live; Jobs are not run.
func reapply(ctx context.Context, opts Options, action, whatToDo string, pick func([]Revision) (*Revision, error), mode func(revisionState) string) (*result.DeployResult, error) {
	t, revs, err := openDeployed(ctx, &opts, whatToDo)
	if err != nil {
		return nil, err
	}
	to, err := pick(revs)
	if err != nil {
		return nil, err
	}
	objs, err := to.manifests()
	if err != nil {
		return nil, err
	}
	registerSecrets(objs)
	st := to.state()
	opts.Jobs = nil
	p, err := t.place(objs, st.Images, &opts, site{mode: mode(st), apps: st.Apps, secrets: st.Secrets, secretsHash: st.SecretsHash})
	if err != nil {
		return nil, err
	}
	p.pullAddress = st.PullAddress
	opts.Log.Info("re-applying a revision", "action", action, "namespace", t.ns, "from", revs[0].Number, "to", to.Number, "mode", p.mode)
	return t.run(ctx, p, &opts, action, to.Number)
}

// pickCurrent chooses the revision set-mode re-applies: the newest good
// one (a revision left deploying or failed is not what runs). A set-mode
// or rollback a killed run left deploying is resumed with its target.
func pickCurrent(revs []Revision) (*Revision, error) {
	if len(revs) == 0 {
		return nil, usererr.New("no deploy revisions recorded: deploy first")
	}
	if cur := revs[0]; cur.Status == statusDeploying && cur.RolledBackTo > 0 {
		return pickRollback(revs, cur.RolledBackTo)
	}
	for i := range revs {
		if revs[i].Status == statusGood {
			return &revs[i], nil
		}
	}
	return nil, usererr.Errorf("no good revision (kept: %s): deploy first", revisionNumbers(revs))
}

// pickRollback chooses the revision to return to: want, or the newest good
// revision older than the current one. A rollback a killed run left
// deploying is resumed: its target is chosen again.
func pickRollback(revs []Revision, want int) (*Revision, error) {
	if len(revs) == 0 {
		return nil, usererr.New("no deploy revisions recorded: nothing to roll back to")
	}
	if cur := revs[0]; cur.Status == statusDeploying && cur.RolledBackTo > 0 && (want == 0 || want == cur.RolledBackTo) {
		want = cur.RolledBackTo
	}
	for i := range revs {
		r := &revs[i]
		if want > 0 {
			if r.Number == want {
				return r, nil
			}
			continue
		}
		if i > 0 && r.Status == statusGood {
			return r, nil
		}
	}
	if want > 0 {
		return nil, usererr.Errorf("revision %d is not recorded (kept: %s)", want, revisionNumbers(revs))
	}
	return nil, usererr.Errorf("no good revision before revision %d (kept: %s)", revs[0].Number, revisionNumbers(revs))
}

func revisionNumbers(revs []Revision) string {
	s := make([]string, len(revs))
	for i, r := range revs {
		s[i] = fmt.Sprintf("%d(%s)", r.Number, r.Status)
	}
	return strings.Join(s, " ")
}

// RunJob runs Job templates from the revision now live in the branch's
// namespace (so the images are the deployed digests), or (opts.CronJobs)
// the jobTemplate of live CronJobs of the namespace, each once. After a
// failed job it returns the result too.
func RunJob(ctx context.Context, opts Options) (*result.DeployResult, error) {
	switch {
	case len(opts.Jobs) == 0 && len(opts.CronJobs) == 0:
		return nil, optionErrorf("JobOrCronJob", "no Job template or CronJob given: name what to run")
	case len(opts.Jobs) > 0 && len(opts.CronJobs) > 0:
		return nil, optionErrorf("JobOrCronJob", "both Job templates (%s) and CronJobs (%s) given: run them one kind at a time", strings.Join(opts.Jobs, ", "), strings.Join(opts.CronJobs, ", "))
	}
	t, revs, err := openDeployed(ctx, &opts, "deploy branch %s first")
	if err != nil {
		return nil, err
	}
	if len(opts.CronJobs) > 0 {
		return t.runCronJobsOf(ctx, &opts, revs)
	}
	if len(revs) == 0 {
		return nil, usererr.Errorf("namespace %s has no deploy revision: deploy branch %s first", t.ns, opts.Branch)
	}
	if revs[0].Status == statusDeploying {
		return nil, fmt.Errorf("revision %d in %s is being deployed, or its deploy was cut short: wait for that deploy, or run it again to finish it, then run the job", revs[0].Number, t.ns)
	}
	objs, err := revs[0].manifests()
	if err != nil {
		return nil, err
	}
	var templates []*unstructured.Unstructured
	for _, u := range objs {
		if isJobTemplate(u) {
			templates = append(templates, u)
		}
	}
	if err := checkTemplates(templates, opts.Jobs); err != nil {
		return nil, err
	}
	res := runJobResult(&opts, t.ns, revs)
	return res, t.runJobs(ctx, templates, &opts, res, nil)
}

// runCronJobsOf is RunJob of opts.CronJobs: each live CronJob's jobTemplate
// is run once as it is live (suspended or not, standby or active, whatever
// the newest revision's status: the CronJob controller would run it so).
func (t *target) runCronJobsOf(ctx context.Context, opts *Options, revs []Revision) (*result.DeployResult, error) {
	srcs, err := t.findCronJobs(ctx, opts.CronJobs)
	if err != nil {
		return nil, err
	}
	res := runJobResult(opts, t.ns, revs)
	return res, t.runCronJobs(ctx, srcs, opts, res)
}

// runJobResult is the result of a run-job into namespace ns, naming the
// newest revision of revs (none when empty).
func runJobResult(opts *Options, ns string, revs []Revision) *result.DeployResult {
	res := &result.DeployResult{Action: "run-job", Branch: opts.Branch, Namespace: ns, Zuul: opts.Zuul,
		Objects: []result.DeployedObject{}, Pruned: []result.DeployedObject{}}
	if len(revs) > 0 {
		st := revs[0].state()
		res.Revision, res.ManifestHash, res.Images, res.PullAddress, res.Mode = revs[0].Number, revs[0].ManifestHash, st.Images, st.PullAddress, st.mode()
	}
	return res
}

// openDeployed opens the branch's existing namespace and its recorded
// revisions, for commands that act on an earlier deploy (rollback, run-job).
// whatToDo, with %s for the branch, ends the error when the namespace is
// missing.
func openDeployed(ctx context.Context, opts *Options, whatToDo string) (*target, []Revision, error) {
	if err := opts.defaults(); err != nil {
		return nil, nil, err
	}
	ns, err := NamespaceFor(opts.Branch, opts.BranchPrefix, opts.NamespacePrefix)
	if err != nil {
		return nil, nil, err
	}
	t, err := opts.target(ctx, ns)
	if err != nil {
		return nil, nil, err
	}
	exists, err := t.checkNamespace(ctx, opts.Branch, false)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		return nil, nil, usererr.Errorf("namespace %s does not exist: "+whatToDo, ns, opts.Branch)
	}
	revs, err := t.revisions(ctx)
	if err != nil {
		return nil, nil, err
	}
	return t, revs, nil
}
