package main

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/deploy"
)

func diffCommand() *ucli.Command {
	return command("diff", "show what deploy would change (server-side dry run); changes nothing", renderFlags(), runDiff)
}

// runDiff prints the report on stdout: it is what the command is for.
func runDiff(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
	opts.Out = cliContext.App.Writer
	_, err := deploy.Diff(ctx, opts)
	return err
}
