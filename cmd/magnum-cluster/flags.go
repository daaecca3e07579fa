package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
)

func specFlag() ucli.Flag {
	return &ucli.PathFlag{Name: "spec", Aliases: []string{"f"}, Usage: "spec file (template + cluster), e.g. examples/cluster/production.yaml", EnvVars: []string{"SLIPWAY_CLUSTER_SPEC"}}
}

// nameFlags choose the cluster by its spec or its name.
func nameFlags() []ucli.Flag {
	return []ucli.Flag{specFlag(),
		&ucli.StringFlag{Name: "name", Usage: "cluster name, when there is no --spec", EnvVars: []string{"SLIPWAY_CLUSTER_NAME"}}}
}

func waitFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.DurationFlag{Name: "wait-timeout", Usage: "give up waiting after this long (default: create_timeout+10m for creates, 1h otherwise)", EnvVars: []string{"SLIPWAY_CLUSTER_WAIT_TIMEOUT"}},
		&ucli.DurationFlag{Name: "poll-interval", Value: 5 * time.Second, Usage: "first pause between status polls; grows to 30s", EnvVars: []string{"SLIPWAY_CLUSTER_POLL_INTERVAL"}},
	}
}

// resultFlags are on the commands that print a ClusterResult.
func resultFlags() []ucli.Flag {
	return append([]ucli.Flag{cli.ResultFlag("cluster", "SLIPWAY_CLUSTER_RESULT")}, cli.ZuulFlags()...)
}

// flags joins a command's flag groups with what every command has: the
// command's timeout and the OpenStack authentication.
func flags(groups ...[]ucli.Flag) []ucli.Flag {
	var out []ucli.Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	return append(append(out, cli.TimeoutFlag(0)), cli.OpenStackFlags()...)
}

// bind reads the flags of the running command into magnum.Options.
func bind(cliContext *ucli.Context) (magnum.Options, error) {
	o := magnum.Options{
		Auth:        cli.OpenStackAuth(cliContext, "magnum-cluster"),
		ClusterName: cliContext.String("name"),
		Kubeconfig:  cliContext.Path("kubeconfig"),
		WaitTimeout: cliContext.Duration("wait-timeout"), PollInterval: cliContext.Duration("poll-interval"),
		AllVersions: cliContext.Bool("all-versions"),
		Progress:    progress.New(cliContext.App.ErrWriter),
		Log:         slog.Default(),
	}
	if p := cliContext.Path("output"); p != "" {
		o.Kubeconfig = p
	}
	if path := cliContext.Path("spec"); path != "" {
		spec, err := magnum.LoadSpecFile(path)
		if err != nil {
			return o, err
		}
		o.Spec, o.SpecFile = spec, path
	}
	if o.Spec != nil && o.ClusterName != "" && o.ClusterName != o.Spec.Cluster.Name {
		return o, cli.Usagef("--name %s and the spec's cluster.name %s disagree: give one of them", o.ClusterName, o.Spec.Cluster.Name)
	}
	if cliContext.IsSet("zuul-vars") || cliContext.IsSet("zuul-return") || cliContext.IsSet("result") {
		z, err := cli.ZuulContext(cliContext)
		if err != nil {
			return o, err
		}
		o.Zuul = z
	}
	if o.WaitTimeout < 0 || cliContext.IsSet("poll-interval") && o.PollInterval <= 0 {
		return o, cli.Usagef("--wait-timeout and --poll-interval must be positive")
	}
	return o, nil
}

// flagged names the flag behind an error about the options.
func flagged(err error) error {
	switch {
	case errors.Is(err, magnum.ErrNoSpec):
		return cli.Usagef("a spec file is required: pass --spec FILE")
	case errors.Is(err, magnum.ErrNoClusterName):
		return cli.Usagef("name the cluster: --spec FILE or --name NAME")
	case errors.Is(err, magnum.ErrNoKubeconfig):
		return cli.Usagef("--output (the kubeconfig path) is required")
	case errors.Is(err, magnum.ErrWaitTimeout):
		return fmt.Errorf("%w (--wait-timeout)", err)
	}
	return err
}

// run is the work of a command: one call into internal/magnum, its answer
// written by cli.Emit as out says; an error about the options names its flag.
func run[T any](f func(context.Context, magnum.Options) (T, error), out func(T) cli.Output) func(context.Context, *ucli.Context, magnum.Options) error {
	return func(ctx context.Context, cliContext *ucli.Context, o magnum.Options) error {
		v, err := f(ctx, o)
		if err != nil {
			return flagged(err)
		}
		return cli.Emit(cliContext, out(v))
	}
}

// clusterOutput writes a ClusterResult to --result, its zuul_return data to
// --zuul-return, and the result to stdout.
func clusterOutput(res *result.ClusterResult) cli.Output {
	ret := magnum.ZuulReturn(res)
	return cli.Output{Result: res, Zuul: &ret}
}

// planOutput prints a plan, one step a line.
func planOutput(lines []string) cli.Output {
	return cli.Output{Print: func(w io.Writer) error {
		_, err := fmt.Fprintln(w, strings.Join(lines, "\n"))
		return err
	}}
}

// jsonOutput prints a command's small JSON answer.
func jsonOutput[T any](v T) cli.Output { return cli.Output{Print: cli.PrintJSON(v)} }
