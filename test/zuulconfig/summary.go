package zuulconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Summary is what a local pipeline run produced, read back from the result
// files the jobs collected into their log directories.
type Summary struct {
	Jobs   []SummaryJob   `json:"jobs"`
	Images []SummaryImage `json:"images,omitempty"`
	// Clusters has one entry per region of the cluster spec.
	Clusters []map[string]any `json:"clusters,omitempty"`
	// Deploys has one entry per site deployed (primary and DR).
	Deploys []map[string]any `json:"deploys,omitempty"`
	Backups []map[string]any `json:"backups,omitempty"`
	// Failovers are the failover reports (a dry run's plan too).
	Failovers []map[string]any `json:"failovers,omitempty"`
}

// SummaryJob is one job's outcome.
type SummaryJob struct {
	Name   string `json:"name"`
	Result string `json:"result"`
}

// SummaryImage is one image and where it landed.
type SummaryImage struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	// Regions maps a region to repository@digest.
	Regions map[string]string `json:"regions,omitempty"`
}

// Summarize reads the state directory of a Runner.
func Summarize(stateDir string) (*Summary, error) {
	jobsDir := filepath.Join(stateDir, "jobs")
	entries, err := os.ReadDir(jobsDir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", jobsDir, err)
	}
	s := &Summary{}
	images := map[string]*SummaryImage{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(jobsDir, e.Name(), "result"))
		s.Jobs = append(s.Jobs, SummaryJob{Name: e.Name(), Result: strings.TrimSpace(string(status))})
		files, _ := filepath.Glob(filepath.Join(jobsDir, e.Name(), "logs", "slipway", "results", "*.json"))
		sort.Strings(files)
		for _, f := range files {
			var doc map[string]any
			data, err := os.ReadFile(f)
			if err != nil || json.Unmarshal(data, &doc) != nil {
				continue
			}
			s.add(doc, images, filepath.Base(f))
		}
	}
	for _, n := range SortedNames(images) {
		s.Images = append(s.Images, *images[n])
	}
	return s, nil
}

func (s *Summary) add(doc map[string]any, images map[string]*SummaryImage, file string) {
	kind, _ := doc["kind"].(string)
	switch {
	case kind == "BuildResult":
		for _, im := range list(doc["images"]) {
			name, _ := im["name"].(string)
			img := image(images, name)
			if d, _ := im["manifestDigest"].(string); d != "" {
				img.Digest = d
			}
		}
	case kind == "PushResult" && !strings.HasPrefix(file, "buildset"):
		for _, im := range list(doc["images"]) {
			name, _ := im["name"].(string)
			img := image(images, name)
			for _, r := range list(im["regions"]) {
				region, _ := r["region"].(string)
				repo, _ := r["repository"].(string)
				digest, _ := r["digest"].(string)
				if img.Regions == nil {
					img.Regions = map[string]string{}
				}
				img.Regions[region] = repo + "@" + digest
			}
		}
	case kind == "ClusterResult":
		s.Clusters = append(s.Clusters, clusterSummary(doc))
	case kind == "ClustersResult":
		for _, r := range list(doc["regions"]) {
			s.Clusters = append(s.Clusters, clusterSummary(r))
		}
	case kind == "DeployResult":
		s.Deploys = append(s.Deploys, pick(doc, "action", "branch", "namespace", "revision", "changed", "mode", "created", "configured", "unchanged"))
	case kind == "FailoverReport":
		m := pick(doc, "from", "to", "dryRun", "rtoSeconds", "dataLossWindowSeconds", "backup")
		var steps []string
		for _, st := range list(doc["steps"]) {
			steps = append(steps, fmt.Sprintf("%v:%v", st["step"], st["delta"]))
		}
		m["steps"] = strings.Join(steps, ",")
		if plan, ok := doc["plan"].([]any); ok {
			var names []string
			for _, p := range plan {
				names = append(names, fmt.Sprint(p))
			}
			m["plan"] = strings.Join(names, ",")
		}
		s.Failovers = append(s.Failovers, m)
	case kind == "BackupResult":
		m := pick(doc, "operation", "prefix", "restored")
		if b, ok := doc["backup"].(map[string]any); ok {
			m["id"], m["site"] = b["id"], b["site"]
			m["dumps"] = len(list(b["dumps"]))
		}
		s.Backups = append(s.Backups, m)
	}
}

// clusterSummary is one region's cluster of a ClusterResult.
func clusterSummary(doc map[string]any) map[string]any {
	c, _ := doc["cluster"].(map[string]any)
	m := pick(c, "name", "uuid", "status", "healthStatus", "apiAddress", "masterCount", "nodeCount")
	if r, ok := doc["region"]; ok {
		m["region"] = r
	}
	if t, ok := doc["template"].(map[string]any); ok {
		m["template"] = t["name"]
	}
	if ch, ok := doc["changes"].([]any); ok {
		m["changes"] = len(ch)
	}
	return m
}

func image(images map[string]*SummaryImage, name string) *SummaryImage {
	if images[name] == nil {
		images[name] = &SummaryImage{Name: name}
	}
	return images[name]
}

func list(v any) []map[string]any {
	var out []map[string]any
	items, _ := v.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func pick(doc map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := doc[k]; ok {
			out[k] = v
		}
	}
	return out
}

// Text renders the summary for people.
func (s *Summary) Text() string {
	var b strings.Builder
	b.WriteString("jobs:\n")
	for _, j := range s.Jobs {
		fmt.Fprintf(&b, "  %-26s %s\n", j.Name, j.Result)
	}
	if len(s.Images) > 0 {
		b.WriteString("images (digest per region):\n")
		for _, im := range s.Images {
			fmt.Fprintf(&b, "  %s %s\n", im.Name, im.Digest)
			for _, r := range SortedNames(im.Regions) {
				fmt.Fprintf(&b, "    %s: %s\n", r, im.Regions[r])
			}
		}
	}
	for _, c := range s.Clusters {
		fmt.Fprintf(&b, "cluster: %s\n", kv(c))
	}
	for _, d := range s.Deploys {
		fmt.Fprintf(&b, "deploy: %s\n", kv(d))
	}
	for _, bk := range s.Backups {
		fmt.Fprintf(&b, "backup: %s\n", kv(bk))
	}
	for _, f := range s.Failovers {
		fmt.Fprintf(&b, "failover: %s\n", kv(f))
	}
	return b.String()
}

func kv(m map[string]any) string {
	var parts []string
	for _, k := range SortedNames(m) {
		v, _ := json.Marshal(m[k])
		parts = append(parts, k+"="+strings.Trim(string(v), `"`))
	}
	return strings.Join(parts, " ")
}
