package deploy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/result"
)

// Revision records are Secrets (the manifests may hold Secrets) named
// slipway-rev-N in the namespace. They are not ApplySet members, so a deploy
// never prunes them; the oldest beyond KeepRevisions are deleted.
const (
	labelRecord     = "slipway.dev/record"
	annRevision     = "slipway.dev/revision"
	annStatus       = "slipway.dev/status"
	annRolledBackTo = "slipway.dev/rolled-back-to"
	annChange       = "slipway.dev/change"
	keyManifests    = "manifests.json.gz"
	keyState        = "state.json"
	statusGood      = "good"
	statusFailed    = "failed"
)

// DefaultKeepRevisions is how many revision records a namespace keeps.
const DefaultKeepRevisions = 10

// Revision is one recorded deploy.
type Revision struct {
	Number       int
	Status       string
	ManifestHash string
	Created      time.Time
	RolledBackTo int
	Change       string
	secret       *corev1.Secret
}

// revisionState is the non-manifest part of a record.
type revisionState struct {
	Branch       string                 `json:"branch"`
	ManifestHash string                 `json:"manifestHash"`
	Images       []result.DeployedImage `json:"images"`
	// ResourceVersions of every applied object after the deploy finished,
	// keyed by objectID: an object still at its version was not touched since.
	ResourceVersions map[string]string `json:"resourceVersions"`
}

func recordName(n int) string { return "slipway-rev-" + strconv.Itoa(n) }

// revisions lists the namespace's records, newest first.
func (t *target) revisions(ctx context.Context) ([]Revision, error) {
	list, err := t.c.core.CoreV1().Secrets(t.ns).List(ctx, metav1.ListOptions{LabelSelector: labelRecord + "=revision"})
	if err != nil {
		return nil, fmt.Errorf("listing deploy revisions in %s: %w", t.ns, ctxErr(ctx, err))
	}
	out := make([]Revision, 0, len(list.Items))
	for i := range list.Items {
		s := &list.Items[i]
		n, err := strconv.Atoi(s.Annotations[annRevision])
		if err != nil {
			continue
		}
		back, _ := strconv.Atoi(s.Annotations[annRolledBackTo])
		var st revisionState
		_ = json.Unmarshal(s.Data[keyState], &st)
		out = append(out, Revision{Number: n, Status: s.Annotations[annStatus], ManifestHash: st.ManifestHash,
			Created: s.CreationTimestamp.Time, RolledBackTo: back, Change: s.Annotations[annChange], secret: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number > out[j].Number })
	return out, nil
}

func (r *Revision) state() revisionState {
	var st revisionState
	if r != nil && r.secret != nil {
		_ = json.Unmarshal(r.secret.Data[keyState], &st)
	}
	return st
}

// manifests returns the objects (applied ones and Job templates) recorded.
func (r *Revision) manifests() ([]*unstructured.Unstructured, error) {
	zr, err := gzip.NewReader(bytes.NewReader(r.secret.Data[keyManifests]))
	if err != nil {
		return nil, fmt.Errorf("reading revision %d: %w", r.Number, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("reading revision %d: %w", r.Number, err)
	}
	var raw []map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("reading revision %d: %w", r.Number, err)
	}
	objs := make([]*unstructured.Unstructured, len(raw))
	for i := range raw {
		objs[i] = &unstructured.Unstructured{Object: raw[i]}
	}
	return objs, nil
}

// record writes revision n with its manifests and state.
func (t *target) record(ctx context.Context, n int, status, change string, rolledBackTo int, objs []*unstructured.Unstructured, st revisionState) error {
	raw := make([]map[string]any, len(objs))
	for i, u := range objs {
		raw[i] = u.Object
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("encoding revision %d: %w", n, err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding revision %d: %w", n, err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:   recordName(n),
			Labels: map[string]string{labelRecord: "revision", labelManagedBy: fieldManager},
			Annotations: map[string]string{
				annRevision: strconv.Itoa(n), annStatus: status, annChange: change,
			},
		},
		Type: "slipway.dev/revision",
		Data: map[string][]byte{keyManifests: buf.Bytes(), keyState: state},
	}
	if rolledBackTo > 0 {
		s.Annotations[annRolledBackTo] = strconv.Itoa(rolledBackTo)
	}
	if _, err := t.c.core.CoreV1().Secrets(t.ns).Create(ctx, s, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("recording revision %d in %s: %w", n, t.ns, ctxErr(ctx, err))
	}
	return nil
}

// updateState rewrites the state of an existing revision (after a no-change
// deploy re-applied drifted objects, so their new versions are known).
func (t *target) updateState(ctx context.Context, r *Revision, st revisionState) error {
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding revision %d: %w", r.Number, err)
	}
	s := r.secret.DeepCopy()
	s.Data[keyState] = state
	if _, err := t.c.core.CoreV1().Secrets(t.ns).Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("updating revision %d in %s: %w", r.Number, t.ns, ctxErr(ctx, err))
	}
	return nil
}

// trimRevisions deletes records beyond the newest keep.
func (t *target) trimRevisions(ctx context.Context, revs []Revision, keep int) {
	for i := keep; i < len(revs); i++ {
		if err := t.c.core.CoreV1().Secrets(t.ns).Delete(ctx, revs[i].secret.Name, metav1.DeleteOptions{}); err != nil {
			t.log.Warn("deleting old revision record", "revision", revs[i].Number, "err", err)
		}
	}
}
