package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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

// regionFlags choose among the regions of a spec with regions and say how
// to log in to each.
func regionFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "region", Usage: "work on this region of the spec's regions only (default: every region)", EnvVars: []string{"SLIPWAY_CLUSTER_REGION"}},
		&ucli.StringSliceFlag{Name: "region-cloud", Usage: "`REGION=CLOUD`: log in to REGION with this clouds.yaml entry instead of OS_CLOUD (repeatable; for regions with a Keystone of their own)", EnvVars: []string{"SLIPWAY_CLUSTER_REGION_CLOUDS"}},
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
	return append(append(append(out, regionFlags()...), cli.TimeoutFlag(0)), cli.OpenStackFlags()...)
}

// bind reads the flags of the running command into magnum.Options.
func bind(cliContext *ucli.Context) (magnum.Options, error) {
	o := magnum.Options{
		Auth:        cli.OpenStackAuth(cliContext, "magnum-cluster"),
		ClusterName: cliContext.String("name"),
		Kubeconfig:  cliContext.Path("kubeconfig"), KubeconfigDir: cliContext.Path("kubeconfig-dir"),
		Region:      cliContext.String("region"),
		WaitTimeout: cliContext.Duration("wait-timeout"), PollInterval: cliContext.Duration("poll-interval"),
		AllVersions: cliContext.Bool("all-versions"),
		Progress:    progress.New(cliContext.App.ErrWriter),
		Log:         slog.Default(),
	}
	if p := cliContext.Path("output"); p != "" {
		o.Kubeconfig = p
	}
	if p := cliContext.Path("output-dir"); p != "" {
		o.KubeconfigDir = p
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
	if err := bindRegions(cliContext, &o); err != nil {
		return o, err
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

// bindRegions reads --region-cloud and checks the region flags against the
// spec, naming the flag at fault.
func bindRegions(cliContext *ucli.Context, o *magnum.Options) error {
	var names []string
	if o.Spec != nil {
		names = o.Spec.RegionNames()
	}
	check := func(flag, region string) error {
		switch {
		case len(names) == 0:
			return cli.Usagef("%s: the spec names no regions (regions:); a spec without regions works in the region of OS_REGION_NAME", flag)
		case !slices.Contains(names, region):
			return cli.Usagef("%s: %s is not one of the spec's regions (%s)", flag, region, strings.Join(names, ", "))
		}
		return nil
	}
	if o.Region != "" {
		if err := check("--region "+o.Region, o.Region); err != nil {
			return err
		}
	}
	for _, v := range cliContext.StringSlice("region-cloud") {
		region, cloud, ok := strings.Cut(v, "=")
		if !ok || region == "" || cloud == "" {
			return cli.Usagef("--region-cloud %q: want REGION=CLOUD (a region of the spec and a clouds.yaml entry)", v)
		}
		if err := check("--region-cloud "+v, region); err != nil {
			return err
		}
		if o.RegionClouds == nil {
			o.RegionClouds = map[string]string{}
		}
		if _, dup := o.RegionClouds[region]; dup {
			return cli.Usagef("--region-cloud: region %s is given twice", region)
		}
		o.RegionClouds[region] = cloud
	}
	if o.Kubeconfig != "" && o.KubeconfigDir != "" {
		return cli.Usagef("give a kubeconfig file or a kubeconfig directory, not both")
	}
	if o.Kubeconfig != "" && len(names) > 1 && o.Region == "" {
		flag := "--kubeconfig"
		if cliContext.IsSet("output") {
			flag = "--output"
		}
		return cli.Usagef("%s: the spec names %d regions (%s): write one kubeconfig per region with %s-dir DIR (DIR/<region>.kubeconfig), or choose one with --region",
			flag, len(names), strings.Join(names, ", "), flag)
	}
	return nil
}

// flagged names the flag behind an error about the options.
func flagged(err error) error {
	switch {
	case errors.Is(err, magnum.ErrNoSpec):
		return cli.Usagef("a spec file is required: pass --spec FILE")
	case errors.Is(err, magnum.ErrNoClusterName):
		return cli.Usagef("name the cluster: --spec FILE or --name NAME")
	case errors.Is(err, magnum.ErrNoKubeconfig):
		return cli.Usagef("--output (the kubeconfig path) or --output-dir (a kubeconfig per region) is required")
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

// perSpec is a command's work for a spec without regions (or no spec) and
// for a spec with regions.
func perSpec(single, regions func(context.Context, *ucli.Context, magnum.Options) error) func(context.Context, *ucli.Context, magnum.Options) error {
	return func(ctx context.Context, cliContext *ucli.Context, o magnum.Options) error {
		if o.Spec != nil && o.Spec.HasRegions() {
			return regions(ctx, cliContext, o)
		}
		return single(ctx, cliContext, o)
	}
}

// inRegions is run of a single-region command in every region of the spec.
func inRegions[T any](f func(context.Context, magnum.Options) (T, error), changed func(T) bool, out func([]magnum.RegionAnswer[T]) cli.Output) func(context.Context, *ucli.Context, magnum.Options) error {
	return run(magnum.InRegions(f, changed), out)
}

// clustersOutput writes a ClustersResult to --result, its zuul_return data
// to --zuul-return, and the result to stdout.
func clustersOutput(res *result.ClustersResult) cli.Output {
	ret := magnum.ZuulReturnRegions(res)
	return cli.Output{Result: res, Zuul: &ret}
}

// regionPlanOutput prints each region's plan, every line prefixed with
// its region.
func regionPlanOutput(answers []magnum.RegionAnswer[[]string]) cli.Output {
	return planOutput(magnum.RegionLines(answers))
}

// jsonOutput prints a command's small JSON answer.
func jsonOutput[T any](v T) cli.Output { return cli.Output{Print: cli.PrintJSON(v)} }
