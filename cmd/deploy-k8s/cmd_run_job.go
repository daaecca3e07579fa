package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strconv"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/deploy"
	"github.com/slipwayci/slipway/internal/result"
)

func runJobCommand() *ucli.Command {
	return command("run-job", "run Job templates of the live revision, or a live CronJob's jobTemplate, once (unique name, logs streamed, exit with its result)",
		append(jobFlags(), cronJobFlag(), timeoutFlag()), runRunJob)
}

// cronJobFlag names live CronJobs whose jobTemplate run-job runs once.
func cronJobFlag() ucli.Flag {
	return &ucli.StringSliceFlag{Name: "cronjob", Usage: "run the jobTemplate of the live CronJob `NAME` once, suspended or not, like kubectl create job --from=cronjob/NAME (repeatable, in order; instead of --job)", EnvVars: []string{"SLIPWAY_CRONJOBS"}}
}

func runRunJob(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
	res, err := deploy.RunJob(ctx, opts)
	return emit(cliContext, res, err, printJobs)
}

// printJobs writes one line per job run on stdout.
func printJobs(w io.Writer, res *result.DeployResult) error {
	for _, j := range res.Jobs {
		var err error
		if j.CronJob != "" {
			exit := "none"
			if j.ExitCode != nil {
				exit = strconv.Itoa(int(*j.ExitCode))
			}
			pod := cmp.Or(j.Pod, "none")
			_, err = fmt.Fprintf(w, "job=%s cronjob=%s pod=%s exit=%s succeeded=%t\n", j.Name, j.CronJob, pod, exit, j.Succeeded)
		} else {
			_, err = fmt.Fprintf(w, "job=%s template=%s succeeded=%t\n", j.Name, j.Template, j.Succeeded)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
