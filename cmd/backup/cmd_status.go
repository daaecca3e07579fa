package main

import (
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/cli"
)

func statusCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "status",
		Usage:     "age of the newest complete backup; exit 1 when older than --max-age",
		UsageText: "backup status --s3-bucket B --max-age 26h [--format prometheus]",
		Flags: concat(s3Flags(), []ucli.Flag{
			&ucli.DurationFlag{Name: "max-age", Value: 26 * time.Hour, Usage: "stale above this age", EnvVars: []string{"SLIPWAY_BACKUP_MAX_AGE"}},
			&ucli.StringFlag{Name: "format", Value: "json", Usage: "json or prometheus (text exposition format)"},
		}),
		Action: func(cliContext *ucli.Context) error {
			f := cliContext.String("format")
			if f != "json" && f != "prometheus" {
				return cli.Usagef("--format %q is not json or prometheus", f)
			}
			ctx, cancel, o, err := start(cliContext)
			if err != nil {
				return err
			}
			defer cancel()
			st, err := backup.GetStatus(ctx, backup.StatusOptions{Common: o.Common, MaxAge: cliContext.Duration("max-age")})
			if st == nil {
				return err
			}
			// A stale status is still printed: monitoring reads it.
			show := printJSON(st)
			if f == "prometheus" {
				show = func(w io.Writer) error { return st.WritePrometheus(w) }
			}
			if perr := cli.Emit(cliContext, cli.Output{Print: show}); err == nil {
				err = perr
			}
			return err
		},
	}
}
