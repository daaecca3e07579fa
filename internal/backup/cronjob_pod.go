package backup

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// podDefaults are the security contexts every job's pod starts from; the
// values file may change their fields but not weaken them (checkPod).
func podDefaults() (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	return &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)), FSGroup: ptr(int64(65532))},
		&corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
}

// overlay sets each field of *dst that src sets (a non-nil pointer, slice
// or map, a non-zero value); dst and src point to the same struct type.
func overlay[T any](dst, src *T) {
	if src == nil {
		return
	}
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for i := range s.NumField() {
		if !s.Field(i).IsZero() {
			d.Field(i).Set(s.Field(i))
		}
	}
}

// labelsSet are the pod labels backup cronjob sets itself.
var labelsSet = []string{"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/managed-by", "slipway.dev/site"}

func (v *Values) checkPod(bad badFunc) error {
	if v.ServiceAccountName != "" && len(validation.IsDNS1123Subdomain(v.ServiceAccountName)) > 0 {
		return bad("serviceAccountName", "%q is not a ServiceAccount name (a lowercase DNS subdomain)", v.ServiceAccountName)
	}
	switch corev1.DNSPolicy(v.DNSPolicy) {
	case "", corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault:
	case corev1.DNSNone:
		return bad("dnsPolicy", "None needs a dnsConfig, which backup cronjob does not set (ClusterFirst, ClusterFirstWithHostNet or Default)")
	default:
		return bad("dnsPolicy", "%q is not ClusterFirst, ClusterFirstWithHostNet or Default", v.DNSPolicy)
	}
	if err := checkLabels("nodeSelector", v.NodeSelector, bad); err != nil {
		return err
	}
	if err := checkLabels("podLabels", v.PodLabels, bad); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(v.PodLabels)) {
		if slices.Contains(labelsSet, k) {
			return bad("podLabels."+k, "set by backup cronjob itself (it names the job and the site): use another key")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(v.PodAnnotations)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return bad("podAnnotations."+k, "%q is not an annotation key: %s", k, errs[0])
		}
	}
	for i, t := range v.Tolerations {
		if err := checkToleration(fmt.Sprintf("tolerations[%d]", i), t, bad); err != nil {
			return err
		}
	}
	if v.Affinity != nil {
		if err := checkAffinity(v.Affinity, bad); err != nil {
			return err
		}
	}
	if p := v.PodSecurityContext; p != nil {
		switch {
		case p.RunAsNonRoot != nil && !*p.RunAsNonRoot:
			return bad("podSecurityContext.runAsNonRoot", "false is refused: the jobs run as a non-root user")
		case p.RunAsUser != nil && *p.RunAsUser == 0:
			return bad("podSecurityContext.runAsUser", "0 (root) is refused: the jobs run as a non-root user")
		}
	}
	if c := v.SecurityContext; c != nil {
		switch {
		case c.Privileged != nil && *c.Privileged:
			return bad("securityContext.privileged", "true is refused: a backup job needs no privilege")
		case c.AllowPrivilegeEscalation != nil && *c.AllowPrivilegeEscalation:
			return bad("securityContext.allowPrivilegeEscalation", "true is refused: a backup job needs no privilege")
		case c.ReadOnlyRootFilesystem != nil && !*c.ReadOnlyRootFilesystem:
			return bad("securityContext.readOnlyRootFilesystem", "false is refused: the jobs write only to their in-memory /tmp")
		case c.RunAsNonRoot != nil && !*c.RunAsNonRoot:
			return bad("securityContext.runAsNonRoot", "false is refused: the jobs run as a non-root user")
		case c.RunAsUser != nil && *c.RunAsUser == 0:
			return bad("securityContext.runAsUser", "0 (root) is refused: the jobs run as a non-root user")
		case c.Capabilities != nil:
			return bad("securityContext.capabilities", "not settable: every capability is dropped (a backup job needs none)")
		}
	}
	return nil
}

func checkLabels(field string, m map[string]string, bad badFunc) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return bad(field+"."+k, "%q is not a label key: %s", k, errs[0])
		}
		if errs := validation.IsValidLabelValue(m[k]); len(errs) > 0 {
			return bad(field+"."+k, "%q is not a label value: %s", m[k], errs[0])
		}
	}
	return nil
}

func checkToleration(field string, t corev1.Toleration, bad badFunc) error {
	if t.Key != "" {
		if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
			return bad(field+".key", "%q is not a taint key: %s", t.Key, errs[0])
		}
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		if t.Key == "" {
			return bad(field+".operator", "an empty key (every taint) needs operator Exists")
		}
		if errs := validation.IsValidLabelValue(t.Value); len(errs) > 0 {
			return bad(field+".value", "%q is not a taint value: %s", t.Value, errs[0])
		}
	case corev1.TolerationOpExists:
		if t.Value != "" {
			return bad(field+".value", "must be empty with operator Exists")
		}
	default:
		return bad(field+".operator", "%q is not Exists or Equal", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return bad(field+".effect", "%q is not NoSchedule, PreferNoSchedule or NoExecute (or empty: every effect)", t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		return bad(field+".tolerationSeconds", "only with effect NoExecute")
	}
	return nil
}

func checkAffinity(a *corev1.Affinity, bad badFunc) error {
	if na := a.NodeAffinity; na != nil {
		if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			f := "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
			if len(r.NodeSelectorTerms) == 0 {
				return bad(f, "empty: give one term at least")
			}
			for i, term := range r.NodeSelectorTerms {
				if err := checkNodeTerm(fmt.Sprintf("%s[%d]", f, i), term, bad); err != nil {
					return err
				}
			}
		}
		for i, p := range na.PreferredDuringSchedulingIgnoredDuringExecution {
			f := fmt.Sprintf("affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[%d]", i)
			if p.Weight < 1 || p.Weight > 100 {
				return bad(f+".weight", "%d is not from 1 to 100", p.Weight)
			}
			if err := checkNodeTerm(f+".preference", p.Preference, bad); err != nil {
				return err
			}
		}
	}
	for _, pa := range []struct {
		field string
		terms *corev1.PodAffinity
	}{
		{"affinity.podAffinity", a.PodAffinity},
		// PodAntiAffinity has PodAffinity's fields: it converts.
		{"affinity.podAntiAffinity", (*corev1.PodAffinity)(a.PodAntiAffinity)},
	} {
		if pa.terms == nil {
			continue
		}
		for i, term := range pa.terms.RequiredDuringSchedulingIgnoredDuringExecution {
			if err := checkPodTerm(fmt.Sprintf("%s.requiredDuringSchedulingIgnoredDuringExecution[%d]", pa.field, i), term, bad); err != nil {
				return err
			}
		}
		for i, w := range pa.terms.PreferredDuringSchedulingIgnoredDuringExecution {
			f := fmt.Sprintf("%s.preferredDuringSchedulingIgnoredDuringExecution[%d]", pa.field, i)
			if w.Weight < 1 || w.Weight > 100 {
				return bad(f+".weight", "%d is not from 1 to 100", w.Weight)
			}
			if err := checkPodTerm(f+".podAffinityTerm", w.PodAffinityTerm, bad); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkNodeTerm(field string, term corev1.NodeSelectorTerm, bad badFunc) error {
	for _, g := range []struct {
		name string
		reqs []corev1.NodeSelectorRequirement
	}{{"matchExpressions", term.MatchExpressions}, {"matchFields", term.MatchFields}} {
		for i, r := range g.reqs {
			f := fmt.Sprintf("%s.%s[%d]", field, g.name, i)
			if r.Key == "" {
				return bad(f+".key", "missing")
			}
			switch r.Operator {
			case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
				if len(r.Values) == 0 {
					return bad(f+".values", "empty: operator %s needs values", r.Operator)
				}
			case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
				if len(r.Values) > 0 {
					return bad(f+".values", "must be empty with operator %s", r.Operator)
				}
			case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
				if len(r.Values) != 1 {
					return bad(f+".values", "operator %s needs exactly one value (an integer)", r.Operator)
				}
			default:
				return bad(f+".operator", "%q is not In, NotIn, Exists, DoesNotExist, Gt or Lt", r.Operator)
			}
		}
	}
	return nil
}

func checkPodTerm(field string, term corev1.PodAffinityTerm, bad badFunc) error {
	if term.TopologyKey == "" {
		return bad(field+".topologyKey", "missing (e.g. kubernetes.io/hostname)")
	}
	for _, s := range []struct {
		name string
		sel  *metav1.LabelSelector
	}{{"labelSelector", term.LabelSelector}, {"namespaceSelector", term.NamespaceSelector}} {
		if s.sel == nil {
			continue
		}
		if _, err := metav1.LabelSelectorAsSelector(s.sel); err != nil {
			return bad(field+"."+s.name, "%s", strings.TrimSpace(err.Error()))
		}
	}
	return nil
}

func (v *Values) checkFreeze(bad badFunc) error {
	f := v.Freeze
	if f == nil {
		return nil
	}
	if v.Role != "primary" {
		return bad("freeze", "only a primary site has the freeze and unfreeze jobs")
	}
	if f.MySQL != nil {
		if v.MySQL == nil {
			return bad("freeze.mysql", "given without mysql (the server to freeze)")
		}
		if f.MySQL.User == "" {
			return bad("freeze.mysql.user", "missing")
		}
		if err := checkRef(&f.MySQL.PasswordSecret, "freeze.mysql.passwordSecret", bad); err != nil {
			return err
		}
	}
	if f.Mongo != nil {
		if v.Mongo == nil {
			return bad("freeze.mongo", "given without mongo (the server to freeze)")
		}
		return checkRef(&f.Mongo.URISecret, "freeze.mongo.uriSecret", bad)
	}
	return nil
}
