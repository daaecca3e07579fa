package main

import (
	"context"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/cli"
)

// runStatus prints the status even when it is stale (exit 1): monitoring
// reads it.
func runStatus(ctx context.Context, cliContext *ucli.Context, o options) error {
	show := cli.PrintJSON
	switch f := cliContext.String("format"); f {
	case "prometheus":
		show = func(v any) func(io.Writer) error { return v.(*backup.Status).WritePrometheus }
	case "json":
	default:
		return cli.Usagef("--format %q is not json or prometheus", f)
	}
	st, err := backup.GetStatus(ctx, backup.StatusOptions{Common: o.Common, MaxAge: cliContext.Duration("max-age"), MySQL: o.MySQL, Mongo: o.Mongo,
		Site: cliContext.String("site")})
	if st == nil {
		return err
	}
	if perr := cli.Emit(cliContext, cli.Output{Print: show(st)}); err == nil {
		err = perr
	}
	return err
}

func statusCommand() *ucli.Command {
	return &ucli.Command{Name: "status", Usage: "age of the newest complete backup; exit 1 when older than --max-age",
		UsageText: "backup status --s3-bucket B --max-age 26h [--format prometheus] [--mysql-host H --mongo-uri-file F: at the DR site, also stale while a restore's swap is unfinished]\n" +
			"backup status --site dr --max-age 26h --s3-bucket B --mysql-host H --mongo-uri-file F   (failover preflight: also the last restore succeeded, none interrupted or running)",
		Flags: concat(s3Flags(), databaseFlags(), []ucli.Flag{
			&ucli.DurationFlag{Name: "max-age", Value: 26 * time.Hour, Usage: "stale above this age", EnvVars: []string{"SLIPWAY_BACKUP_MAX_AGE"}},
			&ucli.StringFlag{Name: "site", Usage: "restore `SITE` to check as a failover's preflight: with its servers, each database's last restore must have succeeded and none be interrupted or running", EnvVars: []string{"SLIPWAY_STATUS_SITE"}},
			&ucli.StringFlag{Name: "format", Value: "json", Usage: "json or prometheus (text exposition format)"},
		}),
		Action: action(runStatus),
	}
}
