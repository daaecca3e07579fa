package main

import (
	"context"
	"log/slog"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/buildimage"
	"github.com/slipwayci/slipway/internal/cli"
)

const lockDebianExample = `# a new lock: mariadb-client and ca-certificates from Debian 12 (bookworm,
# bookworm-updates, bookworm-security), with every dependency
build-image lock-debian --lock examples/images/backup/backup.lock \
  --package mariadb-client --package ca-certificates

# regenerate it (same roots and sources, current versions)
build-image lock-debian --lock examples/images/backup/backup.lock`

// lockDebianCommand is build-image lock-debian: (re)generate the lock of a
// native image's debian layer.
func lockDebianCommand() *ucli.Command {
	env := func(n string) []string { return []string{"SLIPWAY_BUILD_LOCK_" + n} }
	return &ucli.Command{
		Name:        "lock-debian",
		Usage:       "resolve Debian packages and their dependencies into the lock of a native image's debian layer",
		Description: cli.Examples(lockDebianExample),
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "lock", Usage: "lock file to write (its roots, sources and architecture are the defaults)", EnvVars: env("FILE")},
			&ucli.StringSliceFlag{Name: "package", Aliases: []string{"p"}, Usage: "package the image needs (repeat; replaces the lock's roots)", EnvVars: env("PACKAGES")},
			&ucli.StringSliceFlag{Name: "source", Usage: `apt source "URL SUITE [COMPONENT...]" (repeat; replaces the lock's; default bookworm, bookworm-updates, bookworm-security)`, EnvVars: env("SOURCES")},
			&ucli.StringFlag{Name: "architecture", Usage: "dpkg architecture (default: the lock's, else amd64)", EnvVars: env("ARCHITECTURE")},
			&ucli.StringFlag{Name: "keyring", Value: buildimage.DefaultKeyring, Usage: "keyring gpgv checks the sources' InRelease with", EnvVars: env("KEYRING")},
			cli.TimeoutFlag(0),
		},
		Action: cli.Action(lockOptions, lockDebian),
	}
}

func lockOptions(cliContext *ucli.Context) (buildimage.LockOptions, error) {
	o := buildimage.LockOptions{
		Lock:         cliContext.String("lock"),
		Roots:        cliContext.StringSlice("package"),
		Architecture: cliContext.String("architecture"),
		Keyring:      cliContext.String("keyring"),
		Log:          slog.Default(),
	}
	if o.Lock == "" {
		return o, cli.Usagef("--lock: missing: the lock file to write")
	}
	for _, s := range cliContext.StringSlice("source") {
		f := strings.Fields(s)
		if len(f) < 2 {
			return o, cli.Usagef("--source: %q is not \"URL SUITE [COMPONENT...]\"", s)
		}
		o.Sources = append(o.Sources, buildimage.DebianSource{URL: f[0], Suite: f[1], Components: f[2:]})
	}
	return o, nil
}

// lockDebian writes the lock and prints what changed (JSON).
func lockDebian(ctx context.Context, cliContext *ucli.Context, o buildimage.LockOptions) error {
	res, err := buildimage.LockDebian(ctx, o)
	if err != nil {
		return withLockFlags(err)
	}
	if res.Changed {
		slog.Info("lock written", "lock", res.Lock, "packages", res.Packages, "updated", len(res.Updated))
	} else {
		slog.Info("lock unchanged", "lock", res.Lock, "packages", res.Packages)
	}
	return cli.Emit(cliContext, cli.Output{Print: cli.PrintJSON(res)})
}
