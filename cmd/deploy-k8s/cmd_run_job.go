package main

import (
	"context"
	"fmt"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/deploy"
	"github.com/slipwayci/slipway/internal/result"
)

func runJobCommand() *ucli.Command {
	return command("run-job", "run Job templates of the live revision once (unique name, logs streamed, exit with its result)",
		append(jobFlags(), timeoutFlag()), runRunJob)
}

func runRunJob(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
	res, err := deploy.RunJob(ctx, opts)
	return emit(cliContext, res, err, printJobs)
}

// printJobs writes one line per job run on stdout.
func printJobs(w io.Writer, res *result.DeployResult) error {
	for _, j := range res.Jobs {
		if _, err := fmt.Fprintf(w, "job=%s template=%s succeeded=%t\n", j.Name, j.Template, j.Succeeded); err != nil {
			return err
		}
	}
	return nil
}
