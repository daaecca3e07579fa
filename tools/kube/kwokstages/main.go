// Command kwokstages prints the kwok pod Stages of the test control planes:
// kwok's own fast stages (ready, complete, delete, as kwok v0.7.0 ships
// them), changed only where the tests need it, for hack/servers/kube.sh to
// put before the project's own test stages (hack/servers/kube/kwok-stages.yaml).
//
// Supplying any pod Stage turns off all of kwok's built-in ones, so the fast
// stages are taken from kwok's module here instead of being typed again.
// The changes:
//   - ready and complete skip pods with a test annotation
//     (test.kwok/never-ready, test.kwok/fail), so exactly one stage matches
//     such a pod: the project's own;
//   - complete also marks the pod not Ready (PodCompleted), as a kubelet
//     does, so a finished Job pod is not counted ready.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/yaml"
)

// testAnnotations mark pods the project's own stages handle.
var testAnnotations = []string{"test.kwok/never-ready", "test.kwok/fail"}

// completedAnchor is the line of kwok's pod-complete template after which
// the not-Ready conditions go.
const completedAnchor = "{{ $root := . }}\n"

const completedConditions = `conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, reason: PodCompleted}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady, reason: PodCompleted}
`

func main() {
	out, err := stages()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kwokstages:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

func stages() ([]byte, error) {
	var buf bytes.Buffer
	for _, s := range []struct {
		name, doc         string
		skipTest, notDone bool
	}{
		{"pod-ready", fast.DefaultPodReady, true, false},
		{"pod-complete", fast.DefaultPodComplete, true, true},
		{"pod-delete", fast.DefaultPodDelete, false, false},
	} {
		var stage map[string]any
		if err := yaml.Unmarshal([]byte(s.doc), &stage); err != nil {
			return nil, fmt.Errorf("kwok's %s: %w", s.name, err)
		}
		if got := dig(stage, "metadata", "name"); got != s.name {
			return nil, fmt.Errorf("kwok's %s stage is named %v", s.name, got)
		}
		if s.skipTest {
			sel, ok := dig(stage, "spec", "selector").(map[string]any)
			if !ok {
				return nil, fmt.Errorf("kwok's %s: no spec.selector", s.name)
			}
			exprs, _ := sel["matchExpressions"].([]any)
			for _, a := range testAnnotations {
				exprs = append(exprs, map[string]any{"key": `.metadata.annotations["` + a + `"]`, "operator": "DoesNotExist"})
			}
			sel["matchExpressions"] = exprs
		}
		if s.notDone {
			next, ok := dig(stage, "spec", "next").(map[string]any)
			tmpl, _ := next["statusTemplate"].(string)
			if !ok || !strings.Contains(tmpl, completedAnchor) {
				return nil, fmt.Errorf("kwok's %s: its statusTemplate has no line %q to add the conditions after", s.name, completedAnchor)
			}
			next["statusTemplate"] = strings.Replace(tmpl, completedAnchor, completedAnchor+completedConditions, 1)
		}
		b, err := yaml.Marshal(stage)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&buf, "# kwok v0.7.0 kustomize/stage/pod/fast %s (see tools/kube/kwokstages)\n", s.name)
		buf.Write(b)
		buf.WriteString("---\n")
	}
	return buf.Bytes(), nil
}

// dig returns the value at path in nested maps (nil when absent).
func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
