package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/usererr"
)

// Labels and annotations slipway puts on what it manages.
const (
	fieldManager = "slipway"
	// annBranch on a namespace records the platform branch that owns it.
	annBranch = "slipway.dev/branch"
	// annHash on an applied object is the hash of its desired manifest, so an
	// unchanged object is not re-sent on the next deploy.
	annHash = "slipway.dev/manifest-hash"
	// Jobs labelled labelComponent=job (as Tutor's k8s/jobs.yml does) or
	// labelJobTemplate=true are templates: run on demand, never applied.
	labelComponent   = "app.kubernetes.io/component"
	labelJobTemplate = "slipway.dev/job-template"
	labelManagedBy   = "app.kubernetes.io/managed-by"
)

// kindOrder is the apply order: what others depend on first. Kinds not
// listed apply with "other", between services and workloads.
var kindOrder = map[string]int{
	"CustomResourceDefinition": 0,
	"PriorityClass":            1, "StorageClass": 1, "ServiceAccount": 1,
	"ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
	"ResourceQuota": 1, "LimitRange": 1,
	"ConfigMap": 2, "Secret": 2,
	"PersistentVolume": 3, "PersistentVolumeClaim": 3,
	"Service":    4,
	"Deployment": 6, "StatefulSet": 6, "DaemonSet": 6, "ReplicaSet": 6,
	"Pod": 6, "CronJob": 6, "ReplicationController": 6,
	"Job": 7,
}

const otherOrder = 5

func orderOf(kind string) int {
	if o, ok := kindOrder[kind]; ok {
		return o
	}
	return otherOrder
}

// sortForApply orders objects by kindOrder, then kind, then name.
func sortForApply(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if oa, ob := orderOf(a.GetKind()), orderOf(b.GetKind()); oa != ob {
			return oa < ob
		}
		if a.GetKind() != b.GetKind() {
			return a.GetKind() < b.GetKind()
		}
		return a.GetName() < b.GetName()
	})
}

// isJobTemplate reports whether obj is a Job meant to be run on demand.
func isJobTemplate(u *unstructured.Unstructured) bool {
	if u.GetKind() != "Job" {
		return false
	}
	l := u.GetLabels()
	return l[labelComponent] == "job" || l[labelJobTemplate] == "true"
}

// kustomizationNamespace returns the namespace a kustomization directory sets
// for all its objects (Tutor sets K8S_NAMESPACE there), or "".
func kustomizationNamespace(dir string) string {
	for _, k := range kustomizationFiles {
		data, err := os.ReadFile(filepath.Join(dir, k))
		if err != nil {
			continue
		}
		var kz struct {
			Namespace string `yaml:"namespace"`
		}
		if yaml.Unmarshal(data, &kz) == nil {
			return kz.Namespace
		}
	}
	return ""
}

// placeObjects forces every namespaced object into ns and refuses what must
// not be deployed: objects in another namespace (render has already
// cleared the namespace a kustomization sets, which the branch's replaces),
// cluster-scoped objects unless allowed, and kinds the cluster does not serve.
// Namespace objects are dropped: deploy-k8s owns the namespace. It returns
// the mapping of each kept object.
func placeObjects(objs []*unstructured.Unstructured, mapper meta.RESTMapper, ns string, allowClusterScoped bool, log *slog.Logger) ([]*unstructured.Unstructured, map[*unstructured.Unstructured]*meta.RESTMapping, error) {
	kept := objs[:0:0]
	mappings := map[*unstructured.Unstructured]*meta.RESTMapping{}
	seen := map[string]bool{}
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if gvk.Group == "" && gvk.Kind == "Namespace" {
			log.Info("skipping Namespace object: deploy-k8s creates and owns the namespace", "object", u.GetName(), "namespace", ns)
			continue
		}
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			return nil, nil, usererr.Errorf("%s: the cluster does not serve %s (%w)", objectID(u), gvk, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("finding the API of %s: %w", objectID(u), err)
		}
		if m.Scope.Name() == meta.RESTScopeNameRoot {
			if !allowClusterScoped {
				return nil, nil, optionErrorf("AllowClusterScoped", "%s is cluster-scoped: a platform deploy may only change its namespace %s (remove it, or allow cluster-scoped objects)", objectID(u), ns)
			}
			u.SetNamespace("")
		} else {
			if got := u.GetNamespace(); got != "" && got != ns {
				return nil, nil, usererr.Errorf("%s is in namespace %q: branch deploys only into namespace %q (remove metadata.namespace)", objectID(u), got, ns)
			}
			u.SetNamespace(ns)
		}
		key := objectID(u)
		if seen[key] {
			return nil, nil, usererr.Errorf("%s appears twice in the manifests", key)
		}
		seen[key] = true
		kept = append(kept, u)
		mappings[u] = m
	}
	return kept, mappings, nil
}

// hashObject returns a stable hash of u's content.
func hashObject(u *unstructured.Unstructured) (string, error) {
	data, err := json.Marshal(u.Object) // map keys are sorted by encoding/json
	if err != nil {
		return "", fmt.Errorf("encoding %s: %w", objectID(u), err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16]), nil
}

// manifestHash hashes the whole desired state.
func manifestHash(objs []*unstructured.Unstructured) (string, error) {
	h := sha256.New()
	for _, u := range objs {
		data, err := json.Marshal(u.Object)
		if err != nil {
			return "", fmt.Errorf("encoding %s: %w", objectID(u), err)
		}
		h.Write(data)
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
