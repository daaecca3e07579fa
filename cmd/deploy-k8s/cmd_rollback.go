package main

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/deploy"
)

func rollbackCommand() *ucli.Command {
	return command("rollback", "re-apply the previous good revision (or --to-revision)",
		append(applyFlags(), &ucli.IntFlag{Name: "to-revision", Usage: "revision `N` to return to (default: the previous good one)"}), runRollback)
}

func runRollback(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
	res, err := deploy.Rollback(ctx, opts)
	return emit(cliContext, res, err, printSummary)
}
