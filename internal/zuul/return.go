package zuul

import (
	"encoding/json"
	"fmt"

	"github.com/slipwayci/slipway/internal/result"
)

// Return is the data a job hands to zuul_return (`zuul_return: {file: F}`):
// artifacts for later jobs of the buildset, plus stage-specific variables.
type Return struct {
	Artifacts []Artifact
	// Vars become Ansible variables in dependent jobs; keys should be
	// prefixed with the stage (e.g. "slipway_push").
	Vars map[string]any
}

// WriteFile writes r as the JSON document zuul_return's `file` option loads.
func (r Return) WriteFile(path string) error {
	doc := map[string]any{}
	for k, v := range r.Vars {
		if k == "zuul" {
			return fmt.Errorf("zuul_return data: variable name %q is reserved", k)
		}
		doc[k] = v
	}
	if len(r.Artifacts) > 0 {
		doc["zuul"] = map[string]any{"artifacts": r.Artifacts}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding zuul_return data: %w", err)
	}
	return result.WriteAtomic(path, append(data, '\n'), 0o644)
}
