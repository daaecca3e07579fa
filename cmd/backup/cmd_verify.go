package main

import (
	"context"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/result"
)

func runVerify(ctx context.Context, cliContext *ucli.Context, o options) error {
	t0 := time.Now()
	m, err := backup.Verify(ctx, backup.VerifyOptions{Common: o.Common, ID: o.ID, Latest: cliContext.Bool("latest"), AgeIdentityFiles: cliContext.StringSlice("age-identity-file")})
	if err != nil {
		return err
	}
	return emit(cliContext, o, result.BackupResult{Operation: "verify", Backup: m.Ref(), Seconds: time.Since(t0).Seconds()})
}

func verifyCommand() *ucli.Command {
	return &ucli.Command{Name: "verify", Usage: "download a backup and check its checksums and that it decompresses (no database is touched)",
		UsageText: "backup verify [--latest | ID] --s3-bucket B [--age-identity-file F]", ArgsUsage: "[ID]",
		Flags:  concat(s3Flags(), []ucli.Flag{resultFlag()}, pickFlags()),
		Action: action(runVerify),
	}
}
