package main

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
)

func runRestore(ctx context.Context, cliContext *ucli.Context, o options) error {
	// The load holds chunks in flight on each connection.
	softMemoryLimit(64 << 20)
	rep, err := backup.Restore(ctx, backup.RestoreOptions{Common: o.Common, ID: o.ID, Latest: cliContext.Bool("latest"), MySQL: o.MySQL, Mongo: o.Mongo,
		AgeIdentityFiles: cliContext.StringSlice("age-identity-file"), Jobs: cliContext.Int("restore-jobs"), Fresh: cliContext.Bool("fresh"),
		Progress: progress.New(cliContext.App.ErrWriter)})
	if err != nil {
		return err
	}
	return emit(cliContext, o, result.BackupResult{Operation: "restore", Backup: rep.Manifest.Ref(), Restored: rep.Databases, Unchanged: rep.Unchanged,
		Seconds: rep.Duration.Seconds()})
}

func restoreCommand() *ucli.Command {
	return &ucli.Command{Name: "restore", Usage: "restore a complete backup into staging databases, then swap them in",
		UsageText: "backup restore [--latest | ID] --s3-bucket B --mysql-host H [--mongo-uri-file F] [--age-identity-file F]", ArgsUsage: "[ID]",
		Flags: concat(s3Flags(), []ucli.Flag{resultFlag()}, databaseFlags(), pickFlags(), []ucli.Flag{
			&ucli.IntFlag{Name: "restore-jobs", Usage: "connections loading one MySQL database's tables in parallel (0: one per CPU)", EnvVars: []string{"SLIPWAY_RESTORE_JOBS"}},
			&ucli.BoolFlag{Name: "fresh", Usage: "drop what an interrupted restore staged instead of resuming it, and restore even a backup the DR databases already hold", EnvVars: []string{"SLIPWAY_RESTORE_FRESH"}},
		}),
		Action: action(runRestore),
	}
}
