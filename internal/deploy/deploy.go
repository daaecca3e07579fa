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

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
)

// Options configure every deploy-k8s command. Fields a command does not use
// are ignored.
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
	// Timeout bounds the rollout wait and each job (default 10m).
	Timeout time.Duration
	// Jobs are Job templates to run after the rollout (Tutor's init jobs).
	Jobs []string
	// JobCleanup is always, on-success (default) or never.
	JobCleanup string
	// KeepRevisions is how many revision records to keep (default 10).
	KeepRevisions int
	// ToRevision makes rollback return to that revision instead of the
	// previous good one.
	ToRevision int

	// ResultFile, if set, receives the DeployResult.
	ResultFile string
	// ZuulReturn, if set, receives zuul_return data.
	ZuulReturn string
	Zuul       *result.ZuulRef
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

func (o *Options) defaults() error {
	if o.BranchPrefix == "" {
		o.BranchPrefix = DefaultBranchPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.JobCleanup == "" {
		o.JobCleanup = CleanupOnSuccess
	}
	switch o.JobCleanup {
	case CleanupAlways, CleanupOnSuccess, CleanupNever:
	default:
		return cli.Usagef("--job-cleanup %q: want always, on-success or never", o.JobCleanup)
	}
	if o.KeepRevisions <= 0 {
		o.KeepRevisions = defaultKeepRecords
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

// render reads the manifests and pins their images; it needs no cluster.
func render(opts *Options) ([]*unstructured.Unstructured, []result.DeployedImage, error) {
	if opts.Manifests == "" {
		return nil, nil, cli.Usagef("--manifests is empty: give a kustomize directory or manifest file")
	}
	objs, err := Render(opts.Manifests)
	if err != nil {
		return nil, nil, err
	}
	var push *result.PushResult
	if opts.PushResult != "" {
		push = &result.PushResult{}
		if err := result.ReadFile(opts.PushResult, push); err != nil {
			return nil, nil, cli.AsUsage(err)
		}
		if opts.Region == "" {
			return nil, nil, cli.Usagef("--region is empty: say which region's registry the cluster pulls from")
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
	for _, name := range opts.Jobs {
		if _, err := findTemplate(p.templates, name); err != nil {
			return nil, err
		}
	}
	if p.hash, err = manifestHash(p.all()); err != nil {
		return nil, err
	}
	return p, nil
}

// Deploy renders the manifests, applies them into the branch's namespace,
// prunes, waits, runs the requested jobs and records a revision.
func Deploy(ctx context.Context, opts Options) (*result.DeployResult, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ns, err := NamespaceFor(opts.Branch, opts.BranchPrefix, opts.NamespacePrefix)
	if err != nil {
		return nil, err
	}
	objs, images, err := render(&opts)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, opts.Kubeconfig, opts.Context, opts.UserAgent)
	if err != nil {
		return nil, err
	}
	t := newTarget(c, ns, opts.Log)
	p, err := t.place(objs, images, &opts, manifestNamespace(opts.Manifests))
	if err != nil {
		return nil, err
	}
	res, err := t.run(ctx, p, &opts, "deploy", 0)
	return res, finish(res, err, &opts)
}

func manifestNamespace(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return kustomizationNamespace(path)
	}
	return ""
}

// run applies plan p: everything after rendering and validation.
func (t *target) run(ctx context.Context, p *plan, opts *Options, action string, rolledBackTo int) (*result.DeployResult, error) {
	exists, err := t.checkNamespace(ctx, opts.Branch, opts.AdoptNamespace)
	if err != nil {
		return nil, err
	}
	res := &result.DeployResult{Action: action, Branch: opts.Branch, Namespace: t.ns, Zuul: opts.Zuul,
		ManifestHash: p.hash, Images: p.images, RolledBackTo: rolledBackTo,
		Objects: []result.DeployedObject{}, Pruned: []result.DeployedObject{}}
	if res.Images == nil {
		res.Images = []result.DeployedImage{}
	}
	var prevGKs []schema.GroupKind
	var revs []Revision
	if exists {
		if _, prevGKs, err = t.parent(ctx); err != nil {
			return nil, err
		}
		if revs, err = t.revisions(ctx); err != nil {
			return nil, err
		}
	}
	if err := t.ensureNamespace(ctx, opts.Branch, exists); err != nil {
		return nil, err
	}
	var current *Revision
	if len(revs) > 0 {
		current = &revs[0]
	}

	gkSet := map[schema.GroupKind]bool{}
	for _, gk := range prevGKs {
		gkSet[gk] = true
	}
	newGKs := map[schema.GroupKind]bool{}
	for _, u := range p.apply {
		newGKs[u.GroupVersionKind().GroupKind()] = true
		gkSet[u.GroupVersionKind().GroupKind()] = true
	}
	union := keysOf(gkSet)
	live, err := t.listMembers(ctx, union)
	if err != nil {
		return nil, err
	}
	pass := &applyPass{mappings: p.mappings, live: live, recorded: current.state().ResourceVersions}
	// Everything that will be sent is first checked by the server (schema,
	// admission, immutable fields), so bad input changes nothing.
	pass.dryRun = true
	if _, err := t.apply(ctx, p.apply, pass); err != nil {
		if !exists {
			t.deleteNamespace(ctx)
		}
		return nil, err
	}
	pass.dryRun = false
	// The parent lists the union before anything is applied, so an
	// interrupted deploy still knows every kind it may have to prune.
	if err := t.setParent(ctx, union); err != nil {
		return nil, err
	}
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
	if !opts.NoPrune {
		pruned, err := t.prune(ctx, live, keep)
		res.Pruned = append(res.Pruned, pruned...)
		if err != nil {
			return res, err
		}
		if err := t.setParent(ctx, keysOf(newGKs)); err != nil {
			return res, err
		}
	}
	res.Changed = res.Created+res.Configured+len(res.Pruned) > 0
	opts.Log.Info("applied", "namespace", t.ns, "created", res.Created, "configured", res.Configured, "unchanged", res.Unchanged, "pruned", len(res.Pruned))

	var deployErr error
	if !opts.NoWait {
		wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		deployErr = t.waitRollout(wctx, p.apply, p.mappings, opts.Progress)
		cancel()
	}
	if deployErr == nil {
		for _, name := range opts.Jobs {
			tmpl, _ := findTemplate(p.templates, name)
			jctx, cancel := context.WithTimeout(ctx, opts.Timeout)
			jr, err := t.runJob(jctx, tmpl, opts.JobCleanup, opts.Out)
			cancel()
			res.Jobs = append(res.Jobs, jr)
			if err != nil {
				deployErr = err
				break
			}
		}
	}

	// Record: a new revision when the desired state changed (or the last
	// one failed); otherwise refresh the current one's object versions.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	st := revisionState{Branch: opts.Branch, ManifestHash: p.hash, Images: p.images}
	if after, err := t.listMembers(rctx, keysOf(newGKs)); err == nil {
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
	newRevision := current == nil || current.ManifestHash != p.hash || current.Status != statusGood || deployErr != nil || action == "rollback"
	if newRevision {
		n := 1
		if current != nil {
			n = current.Number + 1
		}
		if err := t.record(rctx, n, status, opts.Change, rolledBackTo, p.all(), st); err != nil {
			return res, errors.Join(deployErr, err)
		}
		res.Revision = n
		res.Changed = true
		t.trimRevisions(rctx, append([]Revision{{Number: n}}, revs...), opts.KeepRevisions)
	} else {
		res.Revision = current.Number
		if res.Changed {
			if err := t.updateState(rctx, current, st); err != nil {
				return res, err
			}
		}
	}
	if deployErr != nil { // always a new revision, recorded as failed
		return res, fmt.Errorf("%w (revision %d recorded as failed; fix and deploy again, or `deploy-k8s rollback` to the previous good revision)", deployErr, res.Revision)
	}
	opts.Log.Info("deployed", "namespace", t.ns, "revision", res.Revision, "changed", res.Changed)
	return res, nil
}

func keysOf(m map[schema.GroupKind]bool) []schema.GroupKind {
	out := make([]schema.GroupKind, 0, len(m))
	for gk := range m {
		out = append(out, gk)
	}
	return out
}

// finish writes the result and zuul_return files, also after a failed
// rollout (the result then says what was applied).
func finish(res *result.DeployResult, runErr error, opts *Options) error {
	if res == nil {
		return runErr
	}
	if opts.ResultFile != "" {
		if err := result.WriteFile(opts.ResultFile, res, 0o644); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if opts.ZuulReturn != "" {
		if err := writeZuulReturn(opts.ZuulReturn, res); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// Rollback re-applies the previous good revision (or opts.ToRevision) and
// records it as a new revision.
func Rollback(ctx context.Context, opts Options) (*result.DeployResult, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	t, ns, revs, err := openDeployed(ctx, opts, "branch %s was never deployed, nothing to roll back")
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
	opts.Log.Info("rolling back", "namespace", ns, "from", revs[0].Number, "to", to.Number)
	res, err := t.run(ctx, p, &opts, "rollback", to.Number)
	return res, finish(res, err, &opts)
}

// pickRollback chooses the revision to return to: want, or the newest good
// revision older than the current one.
func pickRollback(revs []Revision, want int) (*Revision, error) {
	if len(revs) == 0 {
		return nil, cli.Usagef("no deploy revisions recorded: nothing to roll back to")
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
		return nil, cli.Usagef("revision %d is not recorded (kept: %s)", want, revisionNumbers(revs))
	}
	return nil, cli.Usagef("no good revision before revision %d (kept: %s)", revs[0].Number, revisionNumbers(revs))
}

func revisionNumbers(revs []Revision) string {
	s := make([]string, len(revs))
	for i, r := range revs {
		s[i] = fmt.Sprintf("%d(%s)", r.Number, r.Status)
	}
	return strings.Join(s, " ")
}

// RunJob runs Job templates from the revision now live in the branch's
// namespace (so the images are the deployed digests).
func RunJob(ctx context.Context, opts Options) (*result.DeployResult, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if len(opts.Jobs) == 0 {
		return nil, cli.Usagef("--job is empty: name the Job template to run")
	}
	t, ns, revs, err := openDeployed(ctx, opts, "deploy branch %s first")
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, cli.Usagef("namespace %s has no deploy revision: deploy branch %s first", ns, opts.Branch)
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
	res := &result.DeployResult{Action: "run-job", Branch: opts.Branch, Namespace: ns, Zuul: opts.Zuul,
		Revision: revs[0].Number, ManifestHash: revs[0].ManifestHash, Images: revs[0].state().Images,
		Objects: []result.DeployedObject{}, Pruned: []result.DeployedObject{}}
	for _, name := range opts.Jobs {
		tmpl, err := findTemplate(templates, name)
		if err != nil {
			return nil, err
		}
		jctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		jr, err := t.runJob(jctx, tmpl, opts.JobCleanup, opts.Out)
		cancel()
		res.Jobs = append(res.Jobs, jr)
		if err != nil {
			return res, finish(res, err, &opts)
		}
	}
	return res, finish(res, nil, &opts)
}

// openDeployed opens the branch's existing namespace and its recorded
// revisions, for commands that act on an earlier deploy (rollback, run-job).
// whatToDo, with %s for the branch, ends the error when the namespace is
// missing.
func openDeployed(ctx context.Context, opts Options, whatToDo string) (*target, string, []Revision, error) {
	ns, err := NamespaceFor(opts.Branch, opts.BranchPrefix, opts.NamespacePrefix)
	if err != nil {
		return nil, "", nil, err
	}
	c, err := connect(ctx, opts.Kubeconfig, opts.Context, opts.UserAgent)
	if err != nil {
		return nil, "", nil, err
	}
	t := newTarget(c, ns, opts.Log)
	exists, err := t.checkNamespace(ctx, opts.Branch, false)
	if err != nil {
		return nil, "", nil, err
	}
	if !exists {
		return nil, "", nil, cli.Usagef("namespace %s does not exist: "+whatToDo, ns, opts.Branch)
	}
	revs, err := t.revisions(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	return t, ns, revs, nil
}
