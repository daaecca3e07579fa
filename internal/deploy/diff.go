package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/slipwayci/slipway/internal/usererr"
)

// DiffSummary counts what a deploy would do.
type DiffSummary struct {
	Create, Change, Unchanged, Prune int
}

// Diff shows, without changing anything, what Deploy would do: each object
// is sent as a server-side dry-run apply and compared with the live object
// (status and bookkeeping metadata left out, Secret values replaced by a
// short hash), and ApplySet members the manifests no longer hold are listed
// as pruned. The report goes to opts.Out.
func Diff(ctx context.Context, opts Options) (DiffSummary, error) {
	var sum DiffSummary
	t, p, err := prepare(ctx, &opts)
	if err != nil {
		return sum, err
	}
	exists, err := t.checkNamespace(ctx, opts.Branch, opts.AdoptNamespace)
	if err != nil {
		return sum, err
	}
	w := opts.Out
	if !exists {
		fmt.Fprintf(w, "+ Namespace/%s (create, owned by %s)\n", t.ns, opts.Branch)
		for _, u := range p.apply {
			fmt.Fprintf(w, "+ %s (create)\n", objectID(u))
			sum.Create++
		}
		fmt.Fprintf(w, "%d to create, 0 to change, 0 unchanged, 0 to prune\n", sum.Create)
		return sum, nil
	}
	_, gks, err := t.parent(ctx)
	if err != nil {
		return sum, err
	}
	live, err := t.listMembers(ctx, gks)
	if err != nil {
		return sum, err
	}
	keep := map[string]bool{}
	for _, u := range p.apply {
		keep[objectID(u)] = true
		if err := t.diffObject(ctx, u, p.mappings[u], w, &sum); err != nil {
			return sum, err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(live)) {
		if !keep[id] {
			fmt.Fprintf(w, "- %s (prune)\n", id)
			sum.Prune++
		}
	}
	fmt.Fprintf(w, "%d to create, %d to change, %d unchanged, %d to prune\n", sum.Create, sum.Change, sum.Unchanged, sum.Prune)
	return sum, nil
}

// diffObject compares u, as a server-side dry-run apply makes it, with its
// live copy, writes the difference to w and counts it in sum.
func (t *target) diffObject(ctx context.Context, u *unstructured.Unstructured, m *meta.RESTMapping, w io.Writer, sum *DiffSummary) error {
	id := objectID(u)
	data, err := json.Marshal(u.Object)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", id, err)
	}
	ri := t.c.resource(m, t.ns)
	force := true
	dry, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: fieldManager, Force: &force, DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		if isBadManifest(err) {
			return usererr.Errorf("dry-run applying %s in %s: %w", id, t.ns, err)
		}
		return fmt.Errorf("dry-run applying %s in %s: %w", id, t.ns, ctxErr(ctx, err))
	}
	cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		fmt.Fprintf(w, "+ %s (create)\n", id)
		sum.Create++
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s in %s: %w", id, t.ns, ctxErr(ctx, err))
	}
	d := cmp.Diff(forDiff(cur), forDiff(dry))
	if d == "" {
		sum.Unchanged++
		return nil
	}
	sum.Change++
	fmt.Fprintf(w, "~ %s (-live +new):\n%s", id, d)
	return nil
}

// forDiff strips what the server maintains and hides Secret values.
func forDiff(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	if c.GetKind() == "Secret" && c.GroupVersionKind().Group == "" {
		if data, ok := c.Object["data"].(map[string]any); ok {
			for k, v := range data {
				s, _ := v.(string)
				sum := sha256.Sum256([]byte(s))
				data[k] = "[secret sha256:" + hex.EncodeToString(sum[:4]) + "]"
			}
		}
	}
	return c.Object
}
