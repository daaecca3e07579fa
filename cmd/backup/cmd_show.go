package main

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/result"
)

// runShow prints one backup's manifest as create's result describes it, so
// a machine without database access (the failover's CI node) reads the
// final backup's freeze and data-loss window from S3 at the same path.
func runShow(ctx context.Context, cliContext *ucli.Context, o options) error {
	m, err := backup.Show(ctx, backup.ShowOptions{Common: o.Common, ID: o.ID, Latest: cliContext.Bool("latest")})
	if err != nil {
		return err
	}
	return emit(cliContext, o, result.BackupResult{Operation: "show", Backup: m.Ref()})
}

func showCommand() *ucli.Command {
	return &ucli.Command{Name: "show", Usage: "print one backup's manifest (site, times, dumps, freeze, dataLossWindowSeconds); reads nothing else",
		UsageText: "backup show --latest --s3-bucket B --s3-prefix acme/ | jq .backup.dataLossWindowSeconds", ArgsUsage: "[ID]",
		Flags:  append(s3Flags(), latestFlag()),
		Action: action(runShow),
	}
}
