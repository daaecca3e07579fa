package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/version"
)

// App is the backup binary: flags are bound to options here and nowhere else.
func App() *ucli.App {
	return cli.New(cli.App{
		Name:  "backup",
		Usage: "dump MySQL and MongoDB to S3 and restore the newest good backup at the DR site",
		Example: `# primary site (credentials from the environment / files):
export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... SLIPWAY_MYSQL_PASSWORD=...
backup create --s3-endpoint https://rgw.example:8080 --s3-bucket acme-backups --s3-prefix acme/ \
  --site primary --mysql-host mysql --mysql-user backup --mysql-database openedx \
  --mongo-uri-file /run/secrets/mongo-uri --mongo-database openedx --age-recipient age1...
backup prune --s3-bucket acme-backups --s3-prefix acme/ --keep-last 3 --keep-daily 7 --keep-weekly 4
# DR site:
backup restore --latest --s3-bucket acme-backups --s3-prefix acme/ --mysql-host mysql \
  --mysql-user root --mongo-uri-file /run/secrets/mongo-uri --age-identity-file /run/secrets/age
backup status --s3-bucket acme-backups --s3-prefix acme/ --max-age 26h --format prometheus`,
		Commands: []*ucli.Command{createCommand(), listCommand(), verifyCommand(), restoreCommand(), pruneCommand(), statusCommand(), cronjobCommand()},
	})
}

func s3Flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "s3-endpoint", Usage: "S3 endpoint `URL` (radosgw: https://rgw.example:8080); empty = AWS", EnvVars: []string{"SLIPWAY_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3"}},
		&ucli.StringFlag{Name: "s3-region", Value: "us-east-1", Usage: "S3 region", EnvVars: []string{"SLIPWAY_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"}},
		&ucli.StringFlag{Name: "s3-bucket", Usage: "bucket holding the backups", EnvVars: []string{"SLIPWAY_S3_BUCKET"}},
		&ucli.StringFlag{Name: "s3-prefix", Usage: "key `PREFIX` ending in / (one per platform, e.g. acme/)", EnvVars: []string{"SLIPWAY_S3_PREFIX"}},
		&ucli.StringFlag{Name: "s3-access-key", Usage: "access key ID (set it through the environment)", EnvVars: []string{"AWS_ACCESS_KEY_ID"}},
		&ucli.StringFlag{Name: "s3-secret-key-file", Usage: "`FILE` holding the secret key; else AWS_SECRET_ACCESS_KEY is used", EnvVars: []string{"SLIPWAY_S3_SECRET_KEY_FILE"}},
		&ucli.StringFlag{Name: "s3-ca-file", Usage: "PEM `FILE` with the CA of a private endpoint", EnvVars: []string{"SLIPWAY_S3_CA_FILE"}},
		&ucli.BoolFlag{Name: "s3-virtual-host", Usage: "virtual-hosted-style addressing (default: path-style, as radosgw needs)", EnvVars: []string{"SLIPWAY_S3_VIRTUAL_HOST"}},
		&ucli.Int64Flag{Name: "s3-part-size", Value: DefaultPartSize, Usage: "multipart part size in bytes (memory used: about 3 x this; raise it for dumps over 48 GiB)", EnvVars: []string{"SLIPWAY_S3_PART_SIZE"}},
		&ucli.DurationFlag{Name: "timeout", Usage: "give up after this long (0 = never)", EnvVars: []string{"SLIPWAY_TIMEOUT"}},
		&ucli.StringFlag{Name: "result", Usage: "also write the JSON result to `FILE`", EnvVars: []string{"SLIPWAY_BACKUP_RESULT"}},
	}
}

func mysqlFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "mysql-host", Usage: "MySQL/MariaDB host", EnvVars: []string{"SLIPWAY_MYSQL_HOST"}},
		&ucli.IntFlag{Name: "mysql-port", Value: 3306, Usage: "MySQL port", EnvVars: []string{"SLIPWAY_MYSQL_PORT"}},
		&ucli.StringFlag{Name: "mysql-socket", Usage: "MySQL unix socket `PATH` (instead of host/port)", EnvVars: []string{"SLIPWAY_MYSQL_SOCKET"}},
		&ucli.StringFlag{Name: "mysql-user", Value: "root", Usage: "MySQL user", EnvVars: []string{"SLIPWAY_MYSQL_USER"}},
		&ucli.StringFlag{Name: "mysql-password-file", Usage: "`FILE` holding the MySQL password; else SLIPWAY_MYSQL_PASSWORD is used", EnvVars: []string{"SLIPWAY_MYSQL_PASSWORD_FILE"}},
		&ucli.StringSliceFlag{Name: "mysql-database", Usage: "MySQL database to back up (repeatable)", EnvVars: []string{"SLIPWAY_MYSQL_DATABASES"}},
		&ucli.StringFlag{Name: "mysql-dump-bin", Usage: "dump tool (default: mariadb-dump or mysqldump on PATH)", EnvVars: []string{"SLIPWAY_MYSQL_DUMP_BIN"}},
		&ucli.StringFlag{Name: "mysql-client-bin", Usage: "client used to load dumps (default: mariadb or mysql on PATH)", EnvVars: []string{"SLIPWAY_MYSQL_CLIENT_BIN"}},
	}
}

func mongoFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "mongo-uri-file", Usage: "`FILE` holding the MongoDB URI (it may hold credentials); else SLIPWAY_MONGO_URI is used", EnvVars: []string{"SLIPWAY_MONGO_URI_FILE"}},
		&ucli.StringSliceFlag{Name: "mongo-database", Usage: "MongoDB database to back up (repeatable)", EnvVars: []string{"SLIPWAY_MONGO_DATABASES"}},
		&ucli.StringFlag{Name: "mongodump-bin", Usage: "mongodump tool (default: on PATH)", EnvVars: []string{"SLIPWAY_MONGODUMP_BIN"}},
		&ucli.StringFlag{Name: "mongorestore-bin", Usage: "mongorestore tool (default: on PATH)", EnvVars: []string{"SLIPWAY_MONGORESTORE_BIN"}},
		&ucli.BoolFlag{Name: "mongo-no-index-restore", Usage: "do not recreate indexes on restore (FerretDB)", EnvVars: []string{"SLIPWAY_MONGO_NO_INDEX_RESTORE"}},
	}
}

func concat(groups ...[]ucli.Flag) []ucli.Flag {
	var out []ucli.Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// secretFrom reads a secret from a file flag or, failing that, an env var.
func secretFrom(cliContext *ucli.Context, fileFlag, envVar string) (logging.Secret, error) {
	if p := cliContext.String(fileFlag); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", cli.Usagef("--%s: %w", fileFlag, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		logging.Register(s)
		return logging.Secret(s), nil
	}
	s := os.Getenv(envVar)
	logging.Register(s)
	return logging.Secret(s), nil
}

func common(cliContext *ucli.Context) (Common, error) {
	sk, err := secretFrom(cliContext, "s3-secret-key-file", "AWS_SECRET_ACCESS_KEY")
	if err != nil {
		return Common{}, err
	}
	return Common{
		S3: S3Config{
			Endpoint: cliContext.String("s3-endpoint"), Region: cliContext.String("s3-region"),
			Bucket: cliContext.String("s3-bucket"), Prefix: cliContext.String("s3-prefix"),
			AccessKey: logging.Secret(cliContext.String("s3-access-key")), SecretKey: sk,
			CAFile: cliContext.String("s3-ca-file"), VirtualHost: cliContext.Bool("s3-virtual-host"),
			PartSize: cliContext.Int64("s3-part-size"),
		},
		Logger: slog.Default(),
	}, nil
}

func mysqlConfig(cliContext *ucli.Context) (MySQLConfig, error) {
	pw, err := secretFrom(cliContext, "mysql-password-file", "SLIPWAY_MYSQL_PASSWORD")
	if err != nil {
		return MySQLConfig{}, err
	}
	return MySQLConfig{
		Host: cliContext.String("mysql-host"), Port: cliContext.Int("mysql-port"), Socket: cliContext.String("mysql-socket"),
		User: cliContext.String("mysql-user"), Password: pw, Databases: cliContext.StringSlice("mysql-database"),
		DumpBin: cliContext.String("mysql-dump-bin"), ClientBin: cliContext.String("mysql-client-bin"),
	}, nil
}

func mongoConfig(cliContext *ucli.Context) (MongoConfig, error) {
	uri, err := secretFrom(cliContext, "mongo-uri-file", "SLIPWAY_MONGO_URI")
	if err != nil {
		return MongoConfig{}, err
	}
	if u, perr := url.Parse(uri.Reveal()); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			logging.Register(p, url.QueryEscape(p))
		}
	}
	return MongoConfig{
		URI: uri, Databases: cliContext.StringSlice("mongo-database"),
		DumpBin: cliContext.String("mongodump-bin"), RestoreBin: cliContext.String("mongorestore-bin"),
		NoIndexRestore: cliContext.Bool("mongo-no-index-restore"),
	}, nil
}

// withTimeout applies --timeout once, for the whole command.
func withTimeout(cliContext *ucli.Context) (context.Context, context.CancelFunc) {
	if d := cliContext.Duration("timeout"); d > 0 {
		return context.WithTimeout(cliContext.Context, d)
	}
	return context.WithCancel(cliContext.Context)
}

// finish maps package errors to the CLI's exit codes.
func finish(err error) error {
	if err == nil {
		return nil
	}
	if IsUsage(err) {
		return cli.AsUsage(errors.New(strings.TrimPrefix(err.Error(), ErrUsage.Error()+": ")))
	}
	return err
}

func ref(m *Manifest) *result.BackupRef {
	if m == nil {
		return nil
	}
	r := &result.BackupRef{ID: m.ID, Site: m.Site, Started: m.Started, Finished: m.Finished, Compression: m.Compression, Encryption: m.Encryption}
	for _, d := range m.Dumps {
		r.Dumps = append(r.Dumps, result.BackupDump{Kind: d.Kind, Database: d.Database, Key: d.Key, Size: d.Size, SHA256: d.SHA256, RawSize: d.RawSize, RawSHA256: d.RawSHA256})
	}
	return r
}

// emit prints the result on stdout and writes it to --result.
func emit(cliContext *ucli.Context, r *result.BackupResult) error {
	r.Header.Tool = "backup " + version.Version
	if p := cliContext.String("result"); p != "" {
		if err := result.WriteFile(p, r, 0o644); err != nil {
			return err
		}
	} else {
		r.Header.APIVersion, r.Header.Kind = result.APIVersion, r.ResultKind()
		r.Header.Generated = time.Now().UTC().Truncate(time.Second)
	}
	return writeJSON(cliContext.App.Writer, r)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func createCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "create",
		Usage:     "dump the databases into a new backup (manifest written last)",
		UsageText: "backup create --site primary --s3-bucket B --mysql-host H --mysql-database app --mongo-database app",
		Flags: concat(s3Flags(), mysqlFlags(), mongoFlags(), []ucli.Flag{
			&ucli.StringFlag{Name: "site", Usage: "name of the site being backed up (recorded in the manifest)", EnvVars: []string{"SLIPWAY_SITE"}},
			&ucli.StringFlag{Name: "compression", Value: CompressZstd, Usage: "zstd or gzip", EnvVars: []string{"SLIPWAY_BACKUP_COMPRESSION"}},
			&ucli.IntFlag{Name: "compression-level", Usage: "compressor level (0 = default: zstd 1, gzip 6)", EnvVars: []string{"SLIPWAY_BACKUP_COMPRESSION_LEVEL"}},
			&ucli.StringSliceFlag{Name: "age-recipient", Usage: "encrypt for this age public key or recipients `FILE` (repeatable)", EnvVars: []string{"SLIPWAY_AGE_RECIPIENTS"}},
		}),
		Action: func(cliContext *ucli.Context) error {
			if cliContext.NArg() > 0 {
				return cli.Usagef("create takes no arguments, got %q", cliContext.Args().First())
			}
			c, err := common(cliContext)
			if err != nil {
				return err
			}
			my, err := mysqlConfig(cliContext)
			if err != nil {
				return err
			}
			mg, err := mongoConfig(cliContext)
			if err != nil {
				return err
			}
			// A soft limit keeps the heap (and so the pod's RSS) small:
			// the stream needs ~20 MiB; GOMEMLIMIT overrides it.
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(40 << 20)
			}
			ctx, cancel := withTimeout(cliContext)
			defer cancel()
			t0 := time.Now()
			m, err := Create(ctx, CreateOptions{Common: c, Site: cliContext.String("site"), MySQL: my, Mongo: mg,
				Compression: cliContext.String("compression"), CompressionLevel: cliContext.Int("compression-level"),
				AgeRecipients: cliContext.StringSlice("age-recipient")})
			if err != nil {
				return finish(err)
			}
			return emit(cliContext, &result.BackupResult{Operation: "create", Bucket: c.S3.Bucket, Prefix: c.S3.Prefix, Backup: ref(m), Seconds: time.Since(t0).Seconds()})
		},
	}
}

func listCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "list",
		Usage:     "list backups, newest first (JSON; --format text for a table)",
		UsageText: "backup list --s3-bucket B --s3-prefix acme/ [--format text]",
		Flags: concat(s3Flags(), []ucli.Flag{
			&ucli.StringFlag{Name: "format", Value: "json", Usage: "json or text"},
		}),
		Action: func(cliContext *ucli.Context) error {
			f := cliContext.String("format")
			if f != "json" && f != "text" {
				return cli.Usagef("--format %q is not json or text", f)
			}
			c, err := common(cliContext)
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cliContext)
			defer cancel()
			entries, err := List(ctx, ListOptions{Common: c})
			if err != nil {
				return finish(err)
			}
			if f == "json" {
				if entries == nil {
					entries = []Entry{}
				}
				return writeJSON(cliContext.App.Writer, entries)
			}
			tw := tabwriter.NewWriter(cliContext.App.Writer, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCOMPLETE\tSITE\tDUMPS\tSIZE")
			for _, e := range entries {
				site, dumps := "-", "-"
				if e.Manifest != nil {
					site, dumps = e.Manifest.Site, fmt.Sprint(len(e.Manifest.Dumps))
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%d\n", e.ID, e.Complete, site, dumps, e.Size)
			}
			return tw.Flush()
		},
	}
}

func identityFlag() ucli.Flag {
	return &ucli.StringSliceFlag{Name: "age-identity-file", Usage: "age identity `FILE` to decrypt backups (repeatable)", EnvVars: []string{"SLIPWAY_AGE_IDENTITY_FILE"}}
}

func pickArgs(cliContext *ucli.Context) (string, bool, error) {
	if cliContext.NArg() > 1 {
		return "", false, cli.Usagef("give one backup ID, got %d arguments", cliContext.NArg())
	}
	return cliContext.Args().First(), cliContext.Bool("latest"), nil
}

func verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "verify",
		Usage:     "download a backup and check its checksums and that it decompresses (no database is touched)",
		UsageText: "backup verify [--latest | ID] --s3-bucket B [--age-identity-file F]",
		Flags:     concat(s3Flags(), []ucli.Flag{&ucli.BoolFlag{Name: "latest", Usage: "the newest complete backup"}, identityFlag()}),
		Action: func(cliContext *ucli.Context) error {
			id, latest, err := pickArgs(cliContext)
			if err != nil {
				return err
			}
			c, err := common(cliContext)
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cliContext)
			defer cancel()
			t0 := time.Now()
			m, err := Verify(ctx, VerifyOptions{Common: c, ID: id, Latest: latest, AgeIdentityFiles: cliContext.StringSlice("age-identity-file")})
			if err != nil {
				return finish(err)
			}
			return emit(cliContext, &result.BackupResult{Operation: "verify", Bucket: c.S3.Bucket, Prefix: c.S3.Prefix, Backup: ref(m), Seconds: time.Since(t0).Seconds()})
		},
	}
}

func restoreCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "restore",
		Usage:     "restore a complete backup into staging databases, then swap them in",
		UsageText: "backup restore [--latest | ID] --s3-bucket B --mysql-host H [--mongo-uri-file F] [--age-identity-file F]",
		Flags:     concat(s3Flags(), mysqlFlags(), mongoFlags(), []ucli.Flag{&ucli.BoolFlag{Name: "latest", Usage: "the newest complete backup"}, identityFlag()}),
		Action: func(cliContext *ucli.Context) error {
			id, latest, err := pickArgs(cliContext)
			if err != nil {
				return err
			}
			c, err := common(cliContext)
			if err != nil {
				return err
			}
			my, err := mysqlConfig(cliContext)
			if err != nil {
				return err
			}
			mg, err := mongoConfig(cliContext)
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cliContext)
			defer cancel()
			rep, err := Restore(ctx, RestoreOptions{Common: c, ID: id, Latest: latest, MySQL: my, Mongo: mg, AgeIdentityFiles: cliContext.StringSlice("age-identity-file")})
			if err != nil {
				return finish(err)
			}
			return emit(cliContext, &result.BackupResult{Operation: "restore", Bucket: c.S3.Bucket, Prefix: c.S3.Prefix, Backup: ref(rep.Manifest), Restored: rep.Databases, Seconds: rep.Duration.Seconds()})
		},
	}
}

func pruneCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "prune",
		Usage:     "delete backups the retention policy does not keep (never the newest complete one)",
		UsageText: "backup prune --s3-bucket B --keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 6 [--dry-run]",
		Flags: concat(s3Flags(), []ucli.Flag{
			&ucli.IntFlag{Name: "keep-last", Usage: "keep the last N complete backups", EnvVars: []string{"SLIPWAY_KEEP_LAST"}},
			&ucli.IntFlag{Name: "keep-daily", Usage: "keep the newest backup of each of the last N days", EnvVars: []string{"SLIPWAY_KEEP_DAILY"}},
			&ucli.IntFlag{Name: "keep-weekly", Usage: "keep the newest backup of each of the last N ISO weeks", EnvVars: []string{"SLIPWAY_KEEP_WEEKLY"}},
			&ucli.IntFlag{Name: "keep-monthly", Usage: "keep the newest backup of each of the last N months", EnvVars: []string{"SLIPWAY_KEEP_MONTHLY"}},
			&ucli.DurationFlag{Name: "incomplete-grace", Value: 24 * time.Hour, Usage: "keep incomplete backups (and open uploads) younger than this", EnvVars: []string{"SLIPWAY_INCOMPLETE_GRACE"}},
			&ucli.BoolFlag{Name: "dry-run", Usage: "show what would be deleted, delete nothing"},
		}),
		Action: func(cliContext *ucli.Context) error {
			c, err := common(cliContext)
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cliContext)
			defer cancel()
			t0 := time.Now()
			rep, err := Prune(ctx, PruneOptions{Common: c, DryRun: cliContext.Bool("dry-run"), IncompleteGrace: cliContext.Duration("incomplete-grace"),
				Policy: Policy{Last: cliContext.Int("keep-last"), Daily: cliContext.Int("keep-daily"), Weekly: cliContext.Int("keep-weekly"), Monthly: cliContext.Int("keep-monthly")}})
			if err != nil {
				return finish(err)
			}
			for _, d := range rep.Decisions {
				verb := "keep"
				if !d.Keep {
					verb = "delete"
					if rep.DryRun {
						verb = "would delete"
					}
				}
				slog.Info(verb, "backup", d.ID, "why", strings.Join(d.Reasons, ", "))
			}
			return emit(cliContext, &result.BackupResult{Operation: "prune", Bucket: c.S3.Bucket, Prefix: c.S3.Prefix, Deleted: rep.Deleted, DryRun: rep.DryRun, Seconds: time.Since(t0).Seconds()})
		},
	}
}

func statusCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "status",
		Usage:     "age of the newest complete backup; exit 1 when older than --max-age",
		UsageText: "backup status --s3-bucket B --max-age 26h [--format prometheus]",
		Flags: concat(s3Flags(), []ucli.Flag{
			&ucli.DurationFlag{Name: "max-age", Value: 26 * time.Hour, Usage: "stale above this age", EnvVars: []string{"SLIPWAY_BACKUP_MAX_AGE"}},
			&ucli.StringFlag{Name: "format", Value: "json", Usage: "json or prometheus (text exposition format)"},
		}),
		Action: func(cliContext *ucli.Context) error {
			f := cliContext.String("format")
			if f != "json" && f != "prometheus" {
				return cli.Usagef("--format %q is not json or prometheus", f)
			}
			c, err := common(cliContext)
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cliContext)
			defer cancel()
			st, err := GetStatus(ctx, StatusOptions{Common: c, MaxAge: cliContext.Duration("max-age")})
			if st != nil {
				var werr error
				if f == "prometheus" {
					werr = st.WritePrometheus(cliContext.App.Writer)
				} else {
					werr = writeJSON(cliContext.App.Writer, st)
				}
				if werr != nil && err == nil {
					err = werr
				}
			}
			return finish(err)
		},
	}
}

func cronjobCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "cronjob",
		Usage:     "render the site's Kubernetes CronJobs (primary: create + prune; dr: restore) as YAML",
		UsageText: "backup cronjob --values examples/backup/primary.yaml > cronjobs.yaml",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "values", Usage: "values `FILE` (see examples/backup/)", EnvVars: []string{"SLIPWAY_BACKUP_VALUES"}},
		},
		Action: func(cliContext *ucli.Context) error {
			p := cliContext.String("values")
			if p == "" {
				return cli.Usagef("--values is required (see examples/backup/)")
			}
			f, err := os.Open(p)
			if err != nil {
				return cli.Usagef("--values: %w", err)
			}
			defer f.Close()
			v, err := ParseValues(f, p)
			if err != nil {
				return cli.AsUsage(err)
			}
			out, err := RenderCronJobs(v)
			if err != nil {
				return err
			}
			_, err = cliContext.App.Writer.Write(out)
			return err
		},
	}
}
