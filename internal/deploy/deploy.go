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
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

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

	// Manifests is a kustomize directory, a directory of manifests or a file.
	Manifests string
	// PushResult is push-registry's result file; Region picks the registry.
	PushResult string
	Region     string
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
	// JobCleanup is always, on-success (default) or never.
	JobCleanup string
	// KeepRevisions is how many revision records to keep (default 10).
	KeepRevisions int
	// ToRevision makes rollback return to that revision instead of the
	// previous good one.
	ToRevision int

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
	apply     []*unstructured.Unstructured
	templates []*unstructured.Unstructured
	mappings  map[*unstructured.Unstructured]*meta.RESTMapping
	images    []result.DeployedImage
	hash      string
}

// all returns applied objects and templates, as a revision records them.
func (p *plan) all() []*unstructured.Unstructured {
	return append(append([]*unstructured.Unstructured{}, p.apply...), p.templates...)
}

// kinds returns the group-kinds of the applied objects.
func (p *plan) kinds() map[schema.GroupKind]bool {
	gks := map[schema.GroupKind]bool{}
	for _, u := range p.apply {
		gks[u.GroupVersionKind().GroupKind()] = true
	}
	return gks
}

// render reads the manifests and pins their images; it needs no cluster.
func render(opts *Options) ([]*unstructured.Unstructured, []result.DeployedImage, error) {
	if opts.Manifests == "" {
		return nil, nil, optionErrorf("Manifests", "no manifests given: name a kustomize directory, a directory of manifests or a manifest file")
	}
	objs, err := Render(opts.Manifests)
	if err != nil {
		return nil, nil, err
	}
	var push *result.PushResult
	if opts.PushResult != "" {
		push = &result.PushResult{}
		if err := result.ReadFile(opts.PushResult, push); err != nil {
			return nil, nil, usererr.Wrap(err)
		}
		if opts.Region == "" {
			return nil, nil, optionErrorf("Region", "no region given: say which region's registry of the push result the cluster pulls from")
		}
	}
	pinner, err := NewPinner(push, opts.Region, opts.AllowImages)
	if err != nil {
		return nil, nil, err
	}
	images, err := pinner.Pin(objs)
	if err != nil {
		return nil, nil, err
	}
	registerSecrets(objs)
	return objs, images, nil
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
func (t *target) place(objs []*unstructured.Unstructured, images []result.DeployedImage, opts *Options, manifestNS string) (*plan, error) {
	objs, mappings, err := placeObjects(objs, t.c.mapper, t.ns, manifestNS, opts.AllowClusterScoped, opts.Log)
	if err != nil {
		return nil, err
	}
	p := &plan{mappings: mappings, images: images}
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
		ann := u.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		delete(ann, annHash)
		u.SetAnnotations(ann)
		h, err := hashObject(u)
		if err != nil {
			return nil, err
		}
		ann[annHash] = h
		u.SetAnnotations(ann)
		p.apply = append(p.apply, u)
	}
	sortForApply(p.apply)
	sortForApply(p.templates)
	if err := checkTemplates(p.templates, opts.Jobs); err != nil {
		return nil, err
	}
	if p.hash, err = manifestHash(p.all()); err != nil {
		return nil, err
	}
	return p, nil
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
	objs, images, err := render(opts)
	if err != nil {
		return nil, nil, err
	}
	t, err := opts.target(ctx, ns)
	if err != nil {
		return nil, nil, err
	}
	p, err := t.place(objs, images, opts, manifestNamespace(opts.Manifests))
	if err != nil {
		return nil, nil, err
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

func (t *target) history(ctx context.Context) (history, error) {
	var h history
	var err error
	if _, h.kinds, err = t.parent(ctx); err != nil {
		return h, err
	}
	h.revs, err = t.revisions(ctx)
	return h, err
}

// run applies plan p: everything after rendering and validation.
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
	res := &result.DeployResult{Action: action, Branch: opts.Branch, Namespace: t.ns, Zuul: opts.Zuul,
		ManifestHash: p.hash, Images: p.images, RolledBackTo: rolledBackTo,
		Objects: []result.DeployedObject{}, Pruned: []result.DeployedObject{}}
	if res.Images == nil {
		res.Images = []result.DeployedImage{}
	}
	live, keep, err := t.applyAll(ctx, p, h, !exists, res)
	if err != nil {
		return nil, err
	}
	if !opts.NoPrune {
		pruned, err := t.prune(ctx, live, keep)
		res.Pruned = append(res.Pruned, pruned...)
		if err != nil {
			return res, err
		}
		if err := t.setParent(ctx, keysOf(p.kinds())); err != nil {
			return res, err
		}
	}
	res.Changed = res.Created+res.Configured+len(res.Pruned) > 0
	opts.Log.Info("applied", "namespace", t.ns, "created", res.Created, "configured", res.Configured, "unchanged", res.Unchanged, "pruned", len(res.Pruned))

	var deployErr error
	if !opts.NoWait {
		deployErr = t.waitRollout(ctx, p.apply, p.mappings, opts.Progress)
	}
	if deployErr == nil {
		deployErr = t.runJobs(ctx, p.templates, opts, res)
	}
	if err := t.recordRun(ctx, p, opts, h, keep, res, deployErr); err != nil {
		return res, err
	}
	opts.Log.Info("deployed", "namespace", t.ns, "revision", res.Revision, "changed", res.Changed)
	return res, nil
}

// applyAll checks every object with a server-side dry run, lists the union
// of the old and new kinds in the ApplySet parent, then applies and records
// in res what each object did. It returns the members found live before
// (what prune looks at) and the objects applied. created says the run made
// the namespace, which a refused dry run removes again.
func (t *target) applyAll(ctx context.Context, p *plan, h history, created bool, res *result.DeployResult) (map[string]member, map[string]bool, error) {
	union := p.kinds()
	for _, gk := range h.kinds {
		union[gk] = true
	}
	live, err := t.listMembers(ctx, keysOf(union))
	if err != nil {
		return nil, nil, err
	}
	pass := &applyPass{mappings: p.mappings, live: live, recorded: h.current().state().ResourceVersions}
	// Everything that will be sent is first checked by the server (schema,
	// admission, immutable fields), so bad input changes nothing.
	pass.dryRun = true
	if _, err := t.apply(ctx, p.apply, pass); err != nil {
		if created {
			t.deleteNamespace(ctx)
		}
		return nil, nil, err
	}
	pass.dryRun = false
	// The parent lists the union before anything is applied, so an
	// interrupted deploy still knows every kind it may have to prune.
	if err := t.setParent(ctx, keysOf(union)); err != nil {
		return nil, nil, err
	}
	applied, err := t.apply(ctx, p.apply, pass)
	if err != nil {
		return nil, nil, err
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
	return live, keep, nil
}

// recordRun records the run: a new revision when the desired state changed
// (or the last one failed, or this run failed); otherwise it refreshes the
// current one's object versions. It returns deployErr, the run's failure,
// saying how it was recorded.
func (t *target) recordRun(ctx context.Context, p *plan, opts *Options, h history, keep map[string]bool, res *result.DeployResult, deployErr error) error {
	// Recorded even when ctx ended: the record says what is in the namespace.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	st := revisionState{Branch: opts.Branch, ManifestHash: p.hash, Images: p.images}
	if after, err := t.listMembers(rctx, keysOf(p.kinds())); err == nil {
		st.ResourceVersions = map[string]string{}
		for id, m := range after {
			if keep[id] {
				st.ResourceVersions[id] = m.obj.GetResourceVersion()
			}
		}
	}
	current := h.current()
	if current != nil && current.ManifestHash == p.hash && current.Status == statusGood && deployErr == nil && res.Action != "rollback" {
		res.Revision = current.Number
		if !res.Changed {
			return nil
		}
		return t.updateState(rctx, current, st)
	}
	status, n := statusGood, 1
	if deployErr != nil {
		status = statusFailed
	}
	if current != nil {
		n = current.Number + 1
	}
	if err := t.record(rctx, n, status, opts.Change, res.RolledBackTo, p.all(), st); err != nil {
		return errors.Join(deployErr, err)
	}
	res.Revision = n
	res.Changed = true
	t.trimRevisions(rctx, append([]Revision{{Number: n}}, h.revs...), opts.KeepRevisions)
	if deployErr != nil {
		return fmt.Errorf("%w (revision %d recorded as failed; fix and deploy again, or roll back to the previous good revision)", deployErr, n)
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
// revision and pinned images of res.
func ZuulReturn(res *result.DeployResult) zuul.Return {
	digests := map[string]string{}
	for _, img := range res.Images {
		digests[img.Reference] = img.Pinned
	}
	return zuul.Return{Vars: map[string]any{"slipway_deploy": map[string]any{
		"namespace": res.Namespace, "revision": res.Revision, "changed": res.Changed,
		"manifest_hash": res.ManifestHash, "images": digests,
	}}}
}

// Rollback re-applies the previous good revision (or opts.ToRevision) and
// records it as a new revision.
func Rollback(ctx context.Context, opts Options) (*result.DeployResult, error) {
	t, revs, err := openDeployed(ctx, &opts, "branch %s was never deployed, nothing to roll back")
	if err != nil {
		return nil, err
	}
	to, err := pickRollback(revs, opts.ToRevision)
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
	p, err := t.place(objs, st.Images, &opts, "")
	if err != nil {
		return nil, err
	}
	opts.Log.Info("rolling back", "namespace", t.ns, "from", revs[0].Number, "to", to.Number)
	return t.run(ctx, p, &opts, "rollback", to.Number)
}

// pickRollback chooses the revision to return to: want, or the newest good
// revision older than the current one.
func pickRollback(revs []Revision, want int) (*Revision, error) {
	if len(revs) == 0 {
		return nil, usererr.New("no deploy revisions recorded: nothing to roll back to")
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
// namespace (so the images are the deployed digests). After a failed job it
// returns the result too.
func RunJob(ctx context.Context, opts Options) (*result.DeployResult, error) {
	if len(opts.Jobs) == 0 {
		return nil, optionErrorf("Jobs", "no Job template given: name the Job template to run")
	}
	t, revs, err := openDeployed(ctx, &opts, "deploy branch %s first")
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, usererr.Errorf("namespace %s has no deploy revision: deploy branch %s first", t.ns, opts.Branch)
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
	res := &result.DeployResult{Action: "run-job", Branch: opts.Branch, Namespace: t.ns, Zuul: opts.Zuul,
		Revision: revs[0].Number, ManifestHash: revs[0].ManifestHash, Images: revs[0].state().Images,
		Objects: []result.DeployedObject{}, Pruned: []result.DeployedObject{}}
	return res, t.runJobs(ctx, templates, &opts, res)
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
