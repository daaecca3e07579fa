// Command zuul-local runs one pipeline of slipway's zuul.d locally through
// the same playbooks Zuul runs (see package zuulconfig's Runner). It is the
// engine of hack/pipeline.sh and of manual reruns (docs/zuul.md).
//
//	zuul-local --state DIR --pipeline post --branch platform/demo \
//	  --zuul item.yaml --site-vars site.yaml --secrets secrets.yaml [--only JOB]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/test/zuulconfig"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "zuul-local: %v\n", err)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("zuul-local", flag.ContinueOnError)
	root := fs.String("root", ".", "repository root (zuul.d, playbooks, roles)")
	state := fs.String("state", "", "state directory: one work and log directory per job (required)")
	pipeline := fs.String("pipeline", "post", "pipeline to run")
	branch := fs.String("branch", "platform/demo", "branch of the item")
	zuulFile := fs.String("zuul", "", "YAML file with the item's `zuul` variables (project, newrev, buildset...)")
	siteFile := fs.String("site-vars", "", "YAML file of site variables (highest precedence)")
	secretsFile := fs.String("secrets", "", "YAML file: secret name -> data, the local values of zuul.d's secrets")
	summary := fs.Bool("summary", true, "print a summary of the stages' results on stdout")
	var only, extra multi
	fs.Var(&only, "only", "run only this job (repeatable); earlier jobs' results come from --state")
	fs.Var(&extra, "e", "extra variable KEY=VALUE (VALUE parsed as YAML; repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: zuul-local --state DIR [--pipeline P] [--branch B] [--zuul F] [--site-vars F] [--secrets F] [--only JOB] [-e K=V]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if *state == "" {
		return 2, errors.New("--state is required")
	}
	cfg, err := zuulconfig.LoadDir(*root)
	if err != nil {
		return 2, err
	}
	if err := zuulconfig.Validate(*root, cfg); err != nil {
		return 2, err
	}
	if len(cfg.Projects) != 1 {
		return 2, fmt.Errorf("zuul.d has %d project stanzas, want 1", len(cfg.Projects))
	}
	r := &zuulconfig.Runner{
		Root: *root, StateDir: *state, Config: cfg, Project: cfg.Projects[0],
		Pipeline: *pipeline, Branch: *branch, Only: only, Log: os.Stderr,
		Zuul: map[string]any{}, SiteVars: map[string]any{}, Secrets: map[string]map[string]any{},
		ExtraVars: map[string]any{},
	}
	if err := readYAML(*zuulFile, &r.Zuul); err != nil {
		return 2, err
	}
	if z, ok := r.Zuul["zuul"].(map[string]any); ok {
		r.Zuul = z
	}
	if err := readYAML(*siteFile, &r.SiteVars); err != nil {
		return 2, err
	}
	if err := readYAML(*secretsFile, &r.Secrets); err != nil {
		return 2, err
	}
	for _, kv := range extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return 2, fmt.Errorf("-e %q: want KEY=VALUE", kv)
		}
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil {
			return 2, fmt.Errorf("-e %s: %v", k, err)
		}
		r.ExtraVars[k] = val
	}
	results, runErr := r.Run(ctx)
	if *summary && len(results) > 0 {
		if s, err := zuulconfig.Summarize(*state); err == nil {
			fmt.Print(s.Text())
			if data, err := json.MarshalIndent(s, "", "  "); err == nil {
				_ = os.WriteFile(filepath.Join(*state, "summary.json"), append(data, '\n'), 0o644)
			}
		}
	}
	if runErr != nil {
		return 1, runErr
	}
	return 0, nil
}

// readYAML decodes a variables file (Zuul's, site variables, local secret
// values) with slipway's one strict decoder.
func readYAML(path string, into any) error {
	if path == "" {
		return nil
	}
	_, err := config.DecodeFile(path, into)
	return err
}
