package main

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/result"
)

// freezeRun is freeze or unfreeze: the same options, the same result.
func freezeRun(op string, do func(context.Context, backup.FreezeOptions) (*backup.FreezeReport, error)) runFunc {
	return func(ctx context.Context, cliContext *ucli.Context, o options) error {
		rep, err := do(ctx, backup.FreezeOptions{Common: o.Common, Site: cliContext.String("site"), MySQL: o.MySQL, Mongo: o.Mongo})
		if err != nil {
			return err
		}
		return emit(cliContext, o, result.BackupResult{Operation: op, Freeze: rep.Freeze, Done: rep.Done, Seconds: rep.Duration.Seconds()})
	}
}

func freezeFlags() []ucli.Flag {
	return concat(s3Flags(), []ucli.Flag{resultFlag()}, databaseFlags(), []ucli.Flag{
		&ucli.StringFlag{Name: "site", Usage: "site whose databases are frozen (names its freeze record, <prefix>freeze/<site>.json)", EnvVars: []string{"SLIPWAY_SITE"}},
	})
}

func freezeCommand() *ucli.Command {
	return &ucli.Command{Name: "freeze", Usage: "stop the application users' writes at a site (MySQL read_only, verified), journalled for unfreeze",
		UsageText: "backup freeze --site primary --s3-bucket B --mysql-host H [--mongo-uri-file F]",
		Flags:     freezeFlags(),
		Action:    action(freezeRun("freeze", backup.Freeze)),
	}
}

func unfreezeCommand() *ucli.Command {
	return &ucli.Command{Name: "unfreeze", Usage: "undo a site's freeze from its record (read_only back to its value before); nothing to do when not frozen",
		UsageText: "backup unfreeze --site primary --s3-bucket B --mysql-host H [--mongo-uri-file F]",
		Flags:     freezeFlags(),
		Action:    action(freezeRun("unfreeze", backup.Unfreeze)),
	}
}
