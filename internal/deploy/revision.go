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
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/crashpoint"
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
	// annJobsDone lists, on a revision being deployed, the jobs its deploy
	// ran to success (template=job,...), so a rerun does not run them again.
	annJobsDone  = "slipway.dev/jobs-done"
	keyManifests = "manifests.json.gz"
	keyState     = "state.json"
	statusGood   = "good"
	statusFailed = "failed"
	// statusDeploying marks the revision a deploy is applying: it is on
	// record before the first object is sent, so a deploy killed half-way
	// leaves history that says so. The same deploy run again resumes it; any
	// other deploy first records it as failed.
	statusDeploying = "deploying"
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
	// PullAddress is the registry address the images are pinned to.
	PullAddress string `json:"pullAddress,omitempty"`
	// ResourceVersions of every applied object after the deploy finished,
	// keyed by objectID: an object still at its version was not touched since.
	ResourceVersions map[string]string `json:"resourceVersions"`
	// Mode is the site's mode, ModeActive (also when empty: records from
	// before standby deploys) or ModeStandby.
	Mode string `json:"mode,omitempty"`
	// Apps are the objectIDs of the application workloads, scaled to 0
	// in standby (what status judges as apps).
	Apps []string `json:"apps,omitempty"`
	// Secrets are the names of the Secrets made from the secrets file and
	// SecretsHash the hash of their content: the values are never recorded.
	Secrets     []string `json:"secrets,omitempty"`
	SecretsHash string   `json:"secretsHash,omitempty"`
}

// mode returns the recorded mode, ModeActive for records without one.
func (st revisionState) mode() string {
	if st.Mode == "" {
		return ModeActive
	}
	return st.Mode
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
		if r, ok := revisionOf(&list.Items[i]); ok {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number > out[j].Number })
	return out, nil
}

// revisionOf reads a record Secret; ok is false for one without a number.
func revisionOf(s *corev1.Secret) (Revision, bool) {
	n, err := strconv.Atoi(s.Annotations[annRevision])
	if err != nil {
		return Revision{}, false
	}
	back, _ := strconv.Atoi(s.Annotations[annRolledBackTo])
	var st revisionState
	_ = json.Unmarshal(s.Data[keyState], &st)
	return Revision{Number: n, Status: s.Annotations[annStatus], ManifestHash: st.ManifestHash,
		Created: s.CreationTimestamp.Time, RolledBackTo: back, Change: s.Annotations[annChange], secret: s}, true
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

// record writes revision n with its manifests and state. A record of that
// number written meanwhile for the same deploy (same manifests, same
// rollback) is adopted; one for another deploy means a second deploy runs
// into the namespace.
func (t *target) record(ctx context.Context, n int, status, change string, rolledBackTo int, objs []*unstructured.Unstructured, st revisionState) (*Revision, error) {
	raw := make([]map[string]any, len(objs))
	for i, u := range objs {
		raw[i] = u.Object
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("encoding revision %d: %w", n, err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	state, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding revision %d: %w", n, err)
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
	secrets := t.c.core.CoreV1().Secrets(t.ns)
	got, err := secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: fieldManager})
	if apierrors.IsAlreadyExists(err) {
		if got, err = secrets.Get(ctx, s.Name, metav1.GetOptions{}); err == nil {
			r, _ := revisionOf(got)
			if r.ManifestHash != st.ManifestHash || r.RolledBackTo != rolledBackTo {
				return nil, fmt.Errorf("recording revision %d in %s: another deploy recorded revision %d meanwhile (manifest hash %s): only one deploy may run into a namespace at a time; when it has ended, deploy again", n, t.ns, n, r.ManifestHash)
			}
			t.log.Info("adopting the record of revision written by an earlier run of this deploy", "revision", n, "namespace", t.ns)
			return &r, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("recording revision %d in %s: %w", n, t.ns, ctxErr(ctx, err))
	}
	r, _ := revisionOf(got)
	return &r, nil
}

// rewrite sets the status and state of an existing revision: when its
// deploy ends, or when a no-change deploy re-applied drifted objects (so
// their new versions are known). The update is conditional on the record
// being as read, so two deploys cannot both finish one revision.
func (t *target) rewrite(ctx context.Context, r *Revision, status string, st revisionState) error {
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding revision %d: %w", r.Number, err)
	}
	s := r.secret.DeepCopy()
	s.Data[keyState] = state
	s.Annotations[annStatus] = status
	got, err := t.c.core.CoreV1().Secrets(t.ns).Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("updating revision %d in %s: %w", r.Number, t.ns, ctxErr(ctx, err))
	}
	*r, _ = revisionOf(got)
	return nil
}

// jobsDone returns the jobs r's deploy ran to success, by template.
func (r *Revision) jobsDone() map[string]string {
	done := map[string]string{}
	if r == nil || r.secret == nil {
		return done
	}
	for _, pair := range strings.Split(r.secret.Annotations[annJobsDone], ",") {
		if template, job, ok := strings.Cut(pair, "="); ok {
			done[template] = job
		}
	}
	return done
}

// markJobDone records on r that its deploy ran template's job to success.
func (t *target) markJobDone(ctx context.Context, r *Revision, template, job string) error {
	s := r.secret.DeepCopy()
	pair := template + "=" + job
	if old := s.Annotations[annJobsDone]; old != "" {
		pair = old + "," + pair
	}
	s.Annotations[annJobsDone] = pair
	got, err := t.c.core.CoreV1().Secrets(t.ns).Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("recording job %s on revision %d in %s: %w", job, r.Number, t.ns, ctxErr(ctx, err))
	}
	*r, _ = revisionOf(got)
	return nil
}

// trimRevisions deletes records beyond the newest keep (oldest first, so
// an interrupted trim never leaves a gap in the history it keeps).
func (t *target) trimRevisions(ctx context.Context, revs []Revision, keep int) {
	for i := len(revs) - 1; i >= keep; i-- {
		err := t.c.core.CoreV1().Secrets(t.ns).Delete(ctx, revs[i].secret.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.log.Warn("deleting old revision record", "revision", revs[i].Number, "err", err)
			continue
		}
		crashpoint.Hit("deploy.trim")
	}
}
