package main

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/deploy"
)

func deployCommand() *ucli.Command {
	return command("deploy", "apply the manifests (server-side apply), prune, wait for the rollout, run jobs, record a revision",
		append(renderFlags(), applyFlags()...), runDeploy)
}

func runDeploy(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
	res, err := deploy.Deploy(ctx, opts)
	return emit(cliContext, res, err, printSummary)
}
