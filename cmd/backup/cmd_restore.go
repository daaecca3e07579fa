package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/result"
)

func restoreCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "restore",
		Usage:     "restore a complete backup into staging databases, then swap them in",
		UsageText: "backup restore [--latest | ID] --s3-bucket B --mysql-host H [--mongo-uri-file F] [--age-identity-file F]",
		ArgsUsage: "[ID]",
		Flags:     concat(s3Flags(), []ucli.Flag{resultFlag()}, mysqlFlags(), mongoFlags(), pickFlags()),
		Action: func(cliContext *ucli.Context) error {
			id, err := backupID(cliContext)
			if err != nil {
				return err
			}
			ctx, cancel, o, err := start(cliContext)
			if err != nil {
				return err
			}
			defer cancel()
			rep, err := backup.Restore(ctx, backup.RestoreOptions{Common: o.Common, ID: id, Latest: cliContext.Bool("latest"), MySQL: o.MySQL, Mongo: o.Mongo,
				AgeIdentityFiles: cliContext.StringSlice("age-identity-file")})
			if err != nil {
				return err
			}
			return emit(cliContext, o, result.BackupResult{Operation: "restore", Backup: rep.Manifest.Ref(), Restored: rep.Databases, Seconds: rep.Duration.Seconds()})
		},
	}
}
