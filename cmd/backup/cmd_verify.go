package main

import (
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/result"
)

func verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "verify",
		Usage:     "download a backup and check its checksums and that it decompresses (no database is touched)",
		UsageText: "backup verify [--latest | ID] --s3-bucket B [--age-identity-file F]",
		ArgsUsage: "[ID]",
		Flags:     concat(s3Flags(), []ucli.Flag{resultFlag()}, pickFlags()),
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
			t0 := time.Now()
			m, err := backup.Verify(ctx, backup.VerifyOptions{Common: o.Common, ID: id, Latest: cliContext.Bool("latest"), AgeIdentityFiles: cliContext.StringSlice("age-identity-file")})
			if err != nil {
				return err
			}
			return emit(cliContext, o, result.BackupResult{Operation: "verify", Backup: m.Ref(), Seconds: time.Since(t0).Seconds()})
		},
	}
}

// backupID is the optional argument of verify and restore.
func backupID(cliContext *ucli.Context) (string, error) {
	if cliContext.NArg() > 1 {
		return "", cli.Usagef("give one backup ID, got %d arguments", cliContext.NArg())
	}
	return cliContext.Args().First(), nil
}
