package main

import (
	"context"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/result"
)

func runCreate(ctx context.Context, cliContext *ucli.Context, o options) error {
	// The stream needs ~20 MiB.
	softMemoryLimit(40 << 20)
	t0 := time.Now()
	m, err := backup.Create(ctx, backup.CreateOptions{Common: o.Common, Site: cliContext.String("site"), MySQL: o.MySQL, Mongo: o.Mongo,
		Compression: cliContext.String("compression"), CompressionLevel: cliContext.Int("compression-level"),
		AgeRecipients: cliContext.StringSlice("age-recipient"), Jobs: cliContext.Int("dump-jobs"), StaleAfter: cliContext.Duration("stale-after"),
		Verify: cliContext.Bool("verify"), SkipFrozen: cliContext.Bool("skip-frozen")})
	if err != nil {
		return err
	}
	r := result.BackupResult{Operation: "create", Backup: m.Ref(), Verified: m != nil && cliContext.Bool("verify"), Seconds: time.Since(t0).Seconds()}
	if m == nil {
		r.Skipped = "the site is frozen"
	}
	return emit(cliContext, o, r)
}

func createCommand() *ucli.Command {
	return &ucli.Command{Name: "create", Usage: "dump the databases into a new backup (manifest written last)",
		UsageText: "backup create --site primary --s3-bucket B --mysql-host H --mysql-database app --mongo-database app",
		Flags: concat(s3Flags(), []ucli.Flag{resultFlag()}, databaseFlags(), []ucli.Flag{
			&ucli.StringFlag{Name: "site", Usage: "name of the site being backed up (recorded in the manifest)", EnvVars: []string{"SLIPWAY_SITE"}},
			&ucli.StringFlag{Name: "compression", Value: backup.CompressZstd, Usage: "zstd or gzip", EnvVars: []string{"SLIPWAY_BACKUP_COMPRESSION"}},
			&ucli.IntFlag{Name: "compression-level", Usage: "compressor level (0 = default: zstd 1, gzip 6)", EnvVars: []string{"SLIPWAY_BACKUP_COMPRESSION_LEVEL"}},
			&ucli.StringSliceFlag{Name: "age-recipient", Usage: "encrypt for this age public key or recipients `FILE` (repeatable)", EnvVars: []string{"SLIPWAY_AGE_RECIPIENTS"}},
			&ucli.IntFlag{Name: "dump-jobs", Value: 2, Usage: "databases dumped at once, each its own consistent stream (about 20 MiB each)", EnvVars: []string{"SLIPWAY_DUMP_JOBS"}},
			&ucli.BoolFlag{Name: "verify", Usage: "then download the new backup and check it as backup verify does (the failover's final backup)", EnvVars: []string{"SLIPWAY_BACKUP_VERIFY"}},
			&ucli.BoolFlag{Name: "skip-frozen", Usage: "make no backup while the site is frozen (the scheduled create: no backup of a failed-over primary reaches the DR site's restore)", EnvVars: []string{"SLIPWAY_BACKUP_SKIP_FROZEN"}},
			&ucli.DurationFlag{Name: "stale-after", Value: 10 * time.Minute, Usage: "an unfinished backup silent this long is a killed run's: removed, with its open uploads", EnvVars: []string{"SLIPWAY_BACKUP_STALE_AFTER"}},
		}),
		Action: action(runCreate),
	}
}
