package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/slipwayci/slipway/internal/usererr"
)

// Site modes a revision records.
const (
	// ModeActive serves the platform: every workload as the manifests say.
	ModeActive = "active"
	// ModeStandby is a DR site waiting for a failover: the data stores run
	// (and are restored into), the application workloads have 0 replicas.
	ModeStandby = "standby"
)

// DefaultScaleDown selects the application workloads of a Tutor platform:
// the Deployments Tutor and its MFE plugin name lms, cms, lms-worker,
// cms-worker, mfe and caddy, and any Deployment or StatefulSet labelled
// app.kubernetes.io/component=app. Tutor's data stores (mysql, mongodb,
// redis, elasticsearch, meilisearch) and smtp are not selected.
var DefaultScaleDown = []string{"lms", "cms", "lms-worker", "cms-worker", "mfe", "caddy", labelComponent + "=app"}

// scaledKinds are the workloads a standby scales to 0.
var scaledKinds = map[string]bool{"Deployment": true, "StatefulSet": true}

// ScaleDown selects the application workloads: by name (path.Match globs)
// or by label (LABEL=VALUE).
type ScaleDown struct {
	names  []string
	labels map[string]string
}

// ParseScaleDown reads selectors: each a workload name glob (lms, *-worker)
// or LABEL=VALUE; none means DefaultScaleDown. A bad one is a user error
// naming it.
func ParseScaleDown(selectors []string) (*ScaleDown, error) {
	if len(selectors) == 0 {
		selectors = DefaultScaleDown
	}
	s := &ScaleDown{labels: map[string]string{}}
	for _, sel := range selectors {
		if key, value, ok := strings.Cut(sel, "="); ok {
			if errs := validation.IsQualifiedName(key); len(errs) > 0 {
				return nil, optionErrorf("ScaleDown", "standby scale-down selector %q: label key %q: %s", sel, key, strings.Join(errs, "; "))
			}
			if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
				return nil, optionErrorf("ScaleDown", "standby scale-down selector %q: label value %q: %s", sel, value, strings.Join(errs, "; "))
			}
			s.labels[key] = value
			continue
		}
		if _, err := path.Match(sel, ""); err != nil || sel == "" || strings.ContainsAny(sel, "/ ") {
			return nil, optionErrorf("ScaleDown", "standby scale-down selector %q: not a workload name glob (lms, *-worker) or LABEL=VALUE", sel)
		}
		s.names = append(s.names, sel)
	}
	return s, nil
}

// selects reports whether workload u is an application.
func (s *ScaleDown) selects(u *unstructured.Unstructured) bool {
	if !scaledKinds[u.GetKind()] || u.GroupVersionKind().Group != "apps" {
		return false
	}
	for _, pat := range s.names {
		if ok, _ := path.Match(pat, u.GetName()); ok {
			return true
		}
	}
	lbl := u.GetLabels()
	for k, v := range s.labels {
		if got, ok := lbl[k]; ok && got == v {
			return true
		}
	}
	return false
}

// appsOf returns the objectIDs of the application workloads in objs,
// sorted.
func (s *ScaleDown) appsOf(objs []*unstructured.Unstructured) []string {
	var apps []string
	for _, u := range objs {
		if s.selects(u) {
			apps = append(apps, objectID(u))
		}
	}
	slices.Sort(apps)
	return apps
}

// standbyCopy returns what a standby applies of object u: scaled, a copy
// of an application workload with 0 replicas, or nil for the
// HorizontalPodAutoscaler of one (it would scale it up again); else u.
func standbyCopy(u *unstructured.Unstructured, scaled map[string]bool, log *slog.Logger) (*unstructured.Unstructured, error) {
	if scaled[objectID(u)] {
		c := u.DeepCopy()
		if err := unstructured.SetNestedField(c.Object, int64(0), "spec", "replicas"); err != nil {
			return nil, usererr.Errorf("scaling %s to 0: %w", objectID(u), err)
		}
		log.Info("standby: application scaled to 0 replicas", "object", objectID(u))
		return c, nil
	}
	if u.GetKind() == "HorizontalPodAutoscaler" && u.GroupVersionKind().Group == "autoscaling" {
		if target := hpaTarget(u); scaled[target] {
			log.Info("standby: leaving out the autoscaler of an application", "object", objectID(u), "target", target)
			return nil, nil
		}
	}
	return u, nil
}

// hpaTarget is the objectID of the workload an autoscaler scales.
func hpaTarget(u *unstructured.Unstructured) string {
	apiVersion, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "apiVersion")
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "kind")
	name, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name")
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return schema.GroupKind{Group: gv.Group, Kind: kind}.String() + "/" + name
}

// scaledDown returns the objectIDs of the workloads p keeps at 0
// replicas: the applications of a standby, none when active.
func (p *plan) scaledDown() map[string]bool {
	out := map[string]bool{}
	if p.mode != ModeStandby {
		return out
	}
	for _, id := range p.apps {
		out[id] = true
	}
	return out
}

// siteHash folds the mode into the hash of the recorded manifests, so that
// a deploy of the same manifests in the other mode is a change. An active
// deploy keeps the manifests' hash as it is. The secrets file's content is
// not folded in: the hash is in result files, and a change of a secret
// value is seen by its object's own hash (and recorded in the revision's
// SecretsHash).
func (s site) siteHash(manifests string) string {
	if s.mode == "" || s.mode == ModeActive {
		return manifests
	}
	sum := sha256.Sum256([]byte(manifests + "\nmode=" + s.mode + "\n"))
	return "sha256:" + hex.EncodeToString(sum[:])
}
