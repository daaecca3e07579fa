package main

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/deploy"
)

func setModeCommand() *ucli.Command {
	return command("set-mode", "re-apply the live revision as a standby (applications at 0) or active; needs no manifests",
		[]ucli.Flag{
			&ucli.StringFlag{Name: "mode", Usage: "`MODE` to put the site in: standby or active", EnvVars: []string{"SLIPWAY_MODE"}},
			noWaitFlag(),
			timeoutFlag(),
			keepRevisionsFlag(),
		}, runSetMode)
}

func runSetMode(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
	res, err := deploy.SetMode(ctx, opts)
	return emit(cliContext, res, err, printSummary)
}
