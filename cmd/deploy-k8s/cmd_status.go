package main

import (
	"context"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/deploy"
)

func statusCommand() *ucli.Command {
	flags := append(append(branchFlags(), kubeFlags()...),
		&ucli.StringFlag{Name: "expect", Usage: "the `MODE` the site must be in: active or standby (default: either)", EnvVars: []string{"SLIPWAY_EXPECT_MODE"}},
		cli.TimeoutFlag(time.Minute))
	return &ucli.Command{
		Name:  "status",
		Usage: "print the site's mode, revision and workloads (JSON); exit 1 unless it is healthy for its mode",
		UsageText: "deploy-k8s status [options]\n\n" +
			"# the DR site must be a healthy standby: data stores ready, applications at 0 with no pods\n" +
			"deploy-k8s status --branch platform/acme --kubeconfig kubeconfig-b --expect standby",
		Flags: append(flags, zuulVarsFlags()...),
		Action: cli.Action(bind, func(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
			return withFlag(runStatus(ctx, cliContext, opts))
		}),
	}
}

// runStatus prints the status as JSON on stdout, also when the site is not
// healthy (then the command exits 1 saying why).
func runStatus(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
	s, err := deploy.Status(ctx, opts)
	if s != nil {
		if perr := cli.PrintJSON(s)(cliContext.App.Writer); perr != nil {
			return perr
		}
	}
	return err
}

// zuulVarsFlags are the Zuul flags of a command that reads the Zuul context
// (the branch) but hands nothing back to Zuul.
func zuulVarsFlags() []ucli.Flag {
	var out []ucli.Flag
	for _, f := range cli.ZuulFlags() {
		if f.Names()[0] != "zuul-return" {
			out = append(out, f)
		}
	}
	return out
}
