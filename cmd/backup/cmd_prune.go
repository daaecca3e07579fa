package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/result"
)

func runPrune(ctx context.Context, cliContext *ucli.Context, o options) error {
	policy := backup.Policy{Last: cliContext.Int("keep-last"), Daily: cliContext.Int("keep-daily"), Weekly: cliContext.Int("keep-weekly"), Monthly: cliContext.Int("keep-monthly")}
	t0 := time.Now()
	rep, err := backup.Prune(ctx, backup.PruneOptions{Common: o.Common, Policy: policy, DryRun: cliContext.Bool("dry-run"), IncompleteGrace: cliContext.Duration("incomplete-grace")})
	if err != nil {
		return err
	}
	for _, d := range rep.Decisions {
		slog.Info(verb(d, rep.DryRun), "backup", d.ID, "why", strings.Join(d.Reasons, ", "))
	}
	return emit(cliContext, o, result.BackupResult{Operation: "prune", Deleted: rep.Deleted, DryRun: rep.DryRun, Seconds: time.Since(t0).Seconds()})
}

// verb says what prune did with a backup, for the log.
func verb(d backup.Decision, dryRun bool) string {
	switch {
	case d.Keep:
		return "keep"
	case dryRun:
		return "would delete"
	default:
		return "delete"
	}
}

func pruneCommand() *ucli.Command {
	return &ucli.Command{Name: "prune", Usage: "delete backups the retention policy does not keep (never the newest complete one)",
		UsageText: "backup prune --s3-bucket B --keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 6 [--dry-run]",
		Flags: concat(s3Flags(), []ucli.Flag{
			resultFlag(),
			&ucli.IntFlag{Name: "keep-last", Usage: "keep the last N complete backups", EnvVars: []string{"SLIPWAY_KEEP_LAST"}},
			&ucli.IntFlag{Name: "keep-daily", Usage: "keep the newest backup of each of the last N days", EnvVars: []string{"SLIPWAY_KEEP_DAILY"}},
			&ucli.IntFlag{Name: "keep-weekly", Usage: "keep the newest backup of each of the last N ISO weeks", EnvVars: []string{"SLIPWAY_KEEP_WEEKLY"}},
			&ucli.IntFlag{Name: "keep-monthly", Usage: "keep the newest backup of each of the last N months", EnvVars: []string{"SLIPWAY_KEEP_MONTHLY"}},
			&ucli.DurationFlag{Name: "incomplete-grace", Value: 24 * time.Hour, Usage: "keep incomplete backups (and open uploads) younger than this", EnvVars: []string{"SLIPWAY_INCOMPLETE_GRACE"}},
			&ucli.BoolFlag{Name: "dry-run", Usage: "show what would be deleted, delete nothing"},
		}),
		Action: action(runPrune),
	}
}
