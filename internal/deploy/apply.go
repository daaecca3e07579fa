package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// applyWorkers is how many objects of one apply group are sent at once.
const applyWorkers = 8

// target is one namespace's deployment: its cluster, namespace and ApplySet.
type target struct {
	c   *cluster
	ns  string
	id  string
	log *slog.Logger
}

func newTarget(c *cluster, ns string, log *slog.Logger) *target {
	return &target{c: c, ns: ns, id: applySetID(ns), log: log}
}

// checkNamespace verifies that ns is free or owned by branch, without
// changing anything. It returns whether the namespace exists.
func (t *target) checkNamespace(ctx context.Context, branch string, adopt bool) (bool, error) {
	nsObj, err := t.c.core.CoreV1().Namespaces().Get(ctx, t.ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", t.ns, ctxErr(ctx, err))
	}
	owner, ok := nsObj.Annotations[annBranch]
	switch {
	case ok && owner == branch:
		return true, nil
	case ok:
		return true, optionErrorf("NamespacePrefix", "namespace %s belongs to branch %s, not %s: two branches map to one namespace (rename the branch or give a namespace prefix)", t.ns, owner, branch)
	case !adopt:
		return true, optionErrorf("AdoptNamespace", "namespace %s exists and no branch owns it (no %s annotation): refusing to deploy into it unless it is adopted", t.ns, annBranch)
	}
	return true, nil
}

// ensureNamespace creates the namespace, or marks it as owned by branch,
// then waits for its default ServiceAccount (also when a killed run created
// the namespace just before).
func (t *target) ensureNamespace(ctx context.Context, branch string, exists bool) error {
	if !exists {
		_, err := t.c.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:        t.ns,
			Labels:      map[string]string{labelManagedBy: fieldManager},
			Annotations: map[string]string{annBranch: branch},
		}}, metav1.CreateOptions{FieldManager: fieldManager})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", t.ns, ctxErr(ctx, err))
		}
		return t.waitServiceAccount(ctx)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]string{labelManagedBy: fieldManager},
		"annotations": map[string]string{annBranch: branch},
	}})
	if _, err := t.c.core.CoreV1().Namespaces().Patch(ctx, t.ns, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("marking namespace %s as owned by %s: %w", t.ns, branch, ctxErr(ctx, err))
	}
	return t.waitServiceAccount(ctx)
}

// waitServiceAccount waits for the namespace's default ServiceAccount: until
// the controller creates it, admission rejects every pod.
func (t *target) waitServiceAccount(ctx context.Context) error {
	return poll.Until(ctx, poll.Constant(pollInterval), func(ctx context.Context) (bool, error) {
		_, err := t.c.core.CoreV1().ServiceAccounts(t.ns).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("waiting for the default ServiceAccount in %s: %w", t.ns, ctxErr(ctx, err))
		}
		return true, nil
	})
}

// parent reads the ApplySet parent Secret and the group-kinds it lists.
func (t *target) parent(ctx context.Context) (*corev1.Secret, []schema.GroupKind, error) {
	s, err := t.c.core.CoreV1().Secrets(t.ns).Get(ctx, applySetParentName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading ApplySet parent Secret %s/%s: %w", t.ns, applySetParentName, ctxErr(ctx, err))
	}
	if tool := s.Annotations[annApplySetTooling]; !strings.HasPrefix(tool, "slipway/") {
		return nil, nil, usererr.Errorf("Secret %s/%s is an ApplySet parent of tool %q, not slipway: refusing to take over its objects", t.ns, applySetParentName, tool)
	}
	if s.Labels[labelApplySetID] != t.id {
		return nil, nil, usererr.Errorf("Secret %s/%s has ApplySet id %q, want %q: refusing to use it", t.ns, applySetParentName, s.Labels[labelApplySetID], t.id)
	}
	var gks []schema.GroupKind
	for _, s := range strings.Split(s.Annotations[annApplySetGKs], ",") {
		if s != "" {
			gks = append(gks, schema.ParseGroupKind(s))
		}
	}
	return s, gks, nil
}

// setParent creates or updates the ApplySet parent listing gks.
func (t *target) setParent(ctx context.Context, gks []schema.GroupKind) error {
	names := make([]string, 0, len(gks))
	for _, gk := range gks {
		names = append(names, gk.String())
	}
	sort.Strings(names)
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{
			"name":        applySetParentName,
			"namespace":   t.ns,
			"labels":      map[string]string{labelApplySetID: t.id, labelManagedBy: fieldManager},
			"annotations": map[string]string{annApplySetTooling: applySetTooling, annApplySetGKs: strings.Join(names, ",")},
		},
		"type": "Opaque",
	})
	force := true
	_, err := t.c.core.CoreV1().Secrets(t.ns).Patch(ctx, applySetParentName, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: fieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("updating ApplySet parent Secret %s/%s: %w", t.ns, applySetParentName, ctxErr(ctx, err))
	}
	return nil
}

// member is a live object of the ApplySet.
type member struct {
	obj     *unstructured.Unstructured
	mapping *meta.RESTMapping
}

// listMembers lists every object labelled as part of this ApplySet, for the
// given group-kinds, in the namespace (or cluster-wide for cluster-scoped
// kinds), keyed by objectID.
func (t *target) listMembers(ctx context.Context, gks []schema.GroupKind) (map[string]member, error) {
	out := map[string]member{}
	sel := labelPartOf + "=" + t.id
	for _, gk := range gks {
		m, err := t.c.mapper.RESTMapping(gk)
		if meta.IsNoMatchError(err) {
			continue // the kind is gone from the cluster, and so are its objects
		}
		if err != nil {
			return nil, fmt.Errorf("finding the API of %s: %w", gk, ctxErr(ctx, err))
		}
		list, err := t.c.resource(m, t.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, fmt.Errorf("listing %s in %s: %w", gk, t.ns, ctxErr(ctx, err))
		}
		for i := range list.Items {
			u := &list.Items[i]
			u.SetGroupVersionKind(m.GroupVersionKind)
			out[objectID(u)] = member{obj: u, mapping: m}
		}
	}
	return out, nil
}

// applyResult is what applying one object did.
type applyResult struct {
	id     string
	action string
	rv     string
}

// applyPass is one pass of server-side apply over the desired objects.
type applyPass struct {
	mappings map[*unstructured.Unstructured]*meta.RESTMapping
	// live holds the ApplySet's members before the deploy, recorded their
	// resourceVersions after the last one.
	live     map[string]member
	recorded map[string]string
	// dryRun asks the server to validate and admit without persisting.
	dryRun bool
}

// unchanged reports whether u's live copy carries the same manifest hash and
// the resourceVersion recorded after the last deploy (nobody touched it
// since), so it need not be sent again.
func (p *applyPass) unchanged(u *unstructured.Unstructured) (string, bool) {
	id := objectID(u)
	l, ok := p.live[id]
	if !ok || l.obj.GetAnnotations()[annHash] != u.GetAnnotations()[annHash] {
		return "", false
	}
	rv := l.obj.GetResourceVersion()
	return rv, p.recorded[id] != "" && p.recorded[id] == rv
}

// apply sends objs with server-side apply, group by group in kindOrder, a few
// objects at a time within a group, skipping unchanged objects.
func (t *target) apply(ctx context.Context, objs []*unstructured.Unstructured, p *applyPass) ([]applyResult, error) {
	results := make([]applyResult, len(objs))
	for start := 0; start < len(objs); {
		end := start
		for end < len(objs) && orderOf(objs[end].GetKind()) == orderOf(objs[start].GetKind()) {
			end++
		}
		if err := t.applyGroup(ctx, objs[start:end], results[start:end], p); err != nil {
			return nil, err
		}
		if !p.dryRun {
			crashpoint.Hit("deploy.apply")
		}
		start = end
	}
	return results, nil
}

func (t *target) applyGroup(ctx context.Context, objs []*unstructured.Unstructured, results []applyResult, p *applyPass) error {
	var send []int
	for i, u := range objs {
		if rv, ok := p.unchanged(u); ok {
			results[i] = applyResult{id: objectID(u), action: "unchanged", rv: rv}
			continue
		}
		send = append(send, i)
	}
	return fanout.Each(ctx, applyWorkers, send, func(ctx context.Context, _ int, i int) error {
		r, err := t.applyOne(ctx, objs[i], p)
		results[i] = r
		return err
	})
}

func (t *target) applyOne(ctx context.Context, u *unstructured.Unstructured, p *applyPass) (applyResult, error) {
	id := objectID(u)
	data, err := json.Marshal(u.Object)
	if err != nil {
		return applyResult{}, fmt.Errorf("encoding %s: %w", id, err)
	}
	force := true
	// Strict: a misspelt field is an error, not silently dropped.
	po := metav1.PatchOptions{FieldManager: fieldManager, Force: &force, FieldValidation: "Strict"}
	verb := "applying"
	if p.dryRun {
		po.DryRun = []string{metav1.DryRunAll}
		verb = "checking (server-side dry run)"
	}
	got, err := t.c.resource(p.mappings[u], t.ns).Patch(ctx, u.GetName(), types.ApplyPatchType, data, po)
	if err != nil {
		if isBadManifest(err) {
			return applyResult{}, usererr.Errorf("%s %s in %s: %w", verb, id, t.ns, err)
		}
		return applyResult{}, fmt.Errorf("%s %s in %s: %w", verb, id, t.ns, ctxErr(ctx, err))
	}
	action := "created"
	if l, ok := p.live[id]; ok {
		action = "configured"
		if l.obj.GetResourceVersion() == got.GetResourceVersion() {
			action = "unchanged"
		}
	}
	return applyResult{id: id, action: action, rv: got.GetResourceVersion()}, nil
}

// prune deletes the members that are not in keep, workloads first, and
// returns what it deleted. Only objects carrying this ApplySet's label in
// this namespace are ever listed, so nothing else can be touched.
func (t *target) prune(ctx context.Context, live map[string]member, keep map[string]bool) ([]result.DeployedObject, error) {
	var gone []member
	for _, id := range slices.Sorted(maps.Keys(live)) {
		if !keep[id] {
			gone = append(gone, live[id])
		}
	}
	sort.SliceStable(gone, func(i, j int) bool { return orderOf(gone[i].obj.GetKind()) > orderOf(gone[j].obj.GetKind()) })
	var pruned []result.DeployedObject
	policy := metav1.DeletePropagationBackground
	for _, m := range gone {
		u := m.obj
		if u.GetLabels()[labelPartOf] != t.id || (u.GetNamespace() != "" && u.GetNamespace() != t.ns) {
			continue // never happens with the label selector; belt and braces
		}
		err := t.c.resource(m.mapping, t.ns).Delete(ctx, u.GetName(), metav1.DeleteOptions{
			PropagationPolicy: &policy,
			Preconditions:     &metav1.Preconditions{UID: ptr(u.GetUID())},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return pruned, fmt.Errorf("pruning %s from %s: %w", objectID(u), t.ns, ctxErr(ctx, err))
		}
		crashpoint.Hit("deploy.prune")
		t.log.Info("pruned", "object", objectID(u), "namespace", t.ns)
		pruned = append(pruned, result.DeployedObject{Group: u.GroupVersionKind().Group, Kind: u.GetKind(), Name: u.GetName(), Action: "pruned"})
	}
	return pruned, nil
}

func ptr[T any](v T) *T { return &v }

// deleteNamespace removes a namespace this run created, when the deploy is
// refused before anything else was written into it.
func (t *target) deleteNamespace(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := t.c.core.CoreV1().Namespaces().Delete(ctx, t.ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.log.Warn("removing the namespace this refused deploy created", "namespace", t.ns, "err", err)
	}
}

// isBadManifest reports whether the server refused an object for what it
// says (schema, validation), not for a fault. A field unknown to the schema
// comes back from server-side apply as a 500 "failed to create typed patch
// object".
func isBadManifest(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		(apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed to create typed patch object"))
}
