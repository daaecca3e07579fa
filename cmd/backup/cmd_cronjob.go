package main

import (
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/cli"
)

// runCronjob renders the values file's CronJobs; it reaches no server.
func runCronjob(cliContext *ucli.Context) error {
	_, cancel, err := cli.Start(cliContext)
	if err != nil {
		return err
	}
	defer cancel()
	p := cliContext.String("values")
	if p == "" {
		return cli.Usagef("--values is required (see examples/backup/)")
	}
	v, err := backup.LoadValues(p)
	if err != nil {
		return err
	}
	out, err := backup.RenderCronJobs(v)
	if err != nil {
		return err
	}
	return cli.Emit(cliContext, cli.Output{Print: func(w io.Writer) error {
		_, err := w.Write(out)
		return err
	}})
}

func cronjobCommand() *ucli.Command {
	return &ucli.Command{Name: "cronjob", Usage: "render the site's Kubernetes CronJobs as YAML (primary: create, prune and, suspended, final, freeze, unfreeze; dr: restore, status)",
		UsageText: "backup cronjob --values examples/backup/primary.yaml > cronjobs.yaml",
		Flags:     []ucli.Flag{&ucli.StringFlag{Name: "values", Usage: "values `FILE` (see examples/backup/)", EnvVars: []string{"SLIPWAY_BACKUP_VALUES"}}},
		Action:    runCronjob,
	}
}
