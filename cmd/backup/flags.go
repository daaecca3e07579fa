package main

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/result"
)

func s3Flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "s3-endpoint", Usage: "S3 endpoint `URL` (radosgw: https://rgw.example:8080); empty = AWS", EnvVars: []string{"SLIPWAY_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3"}},
		&ucli.StringFlag{Name: "s3-region", Value: "us-east-1", Usage: "S3 region", EnvVars: []string{"SLIPWAY_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"}},
		&ucli.StringFlag{Name: "s3-bucket", Usage: "bucket holding the backups", EnvVars: []string{"SLIPWAY_S3_BUCKET"}},
		&ucli.StringFlag{Name: "s3-prefix", Usage: "key `PREFIX` ending in / (one per platform, e.g. acme/)", EnvVars: []string{"SLIPWAY_S3_PREFIX"}},
		&ucli.StringFlag{Name: "s3-access-key-file", Usage: "`FILE` holding the access key ID; else AWS_ACCESS_KEY_ID is used", EnvVars: []string{"SLIPWAY_S3_ACCESS_KEY_FILE"}},
		&ucli.StringFlag{Name: "s3-secret-key-file", Usage: "`FILE` holding the secret key; else AWS_SECRET_ACCESS_KEY is used", EnvVars: []string{"SLIPWAY_S3_SECRET_KEY_FILE"}},
		&ucli.StringFlag{Name: "s3-ca-file", Usage: "PEM `FILE` with the CA of a private endpoint", EnvVars: []string{"SLIPWAY_S3_CA_FILE"}},
		&ucli.BoolFlag{Name: "s3-virtual-host", Usage: "virtual-hosted-style addressing (default: path-style, as radosgw needs)", EnvVars: []string{"SLIPWAY_S3_VIRTUAL_HOST"}},
		&ucli.Int64Flag{Name: "s3-part-size", Value: backup.DefaultPartSize, Usage: "multipart part size in bytes (memory used: about 3 x this; raise it for dumps over 48 GiB)", EnvVars: []string{"SLIPWAY_S3_PART_SIZE"}},
		cli.TimeoutFlag(0),
	}
}

// resultFlag is --result, on the commands that write a BackupResult.
func resultFlag() ucli.Flag { return cli.ResultFlag("backup", "SLIPWAY_BACKUP_RESULT") }

// databaseFlags say where the MySQL and MongoDB servers are (create and
// restore).
func databaseFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "mysql-host", Usage: "MySQL/MariaDB host", EnvVars: []string{"SLIPWAY_MYSQL_HOST"}},
		&ucli.IntFlag{Name: "mysql-port", Value: 3306, Usage: "MySQL port", EnvVars: []string{"SLIPWAY_MYSQL_PORT"}},
		&ucli.StringFlag{Name: "mysql-socket", Usage: "MySQL unix socket `PATH` (instead of host/port)", EnvVars: []string{"SLIPWAY_MYSQL_SOCKET"}},
		&ucli.StringFlag{Name: "mysql-user", Value: "root", Usage: "MySQL user", EnvVars: []string{"SLIPWAY_MYSQL_USER"}},
		&ucli.StringFlag{Name: "mysql-password-file", Usage: "`FILE` holding the MySQL password; else SLIPWAY_MYSQL_PASSWORD is used", EnvVars: []string{"SLIPWAY_MYSQL_PASSWORD_FILE"}},
		&ucli.StringSliceFlag{Name: "mysql-database", Usage: "MySQL database to back up (repeatable)", EnvVars: []string{"SLIPWAY_MYSQL_DATABASES"}},
		&ucli.StringFlag{Name: "mysql-dump-bin", Usage: "dump tool (default: mariadb-dump or mysqldump on PATH)", EnvVars: []string{"SLIPWAY_MYSQL_DUMP_BIN"}},
		&ucli.StringFlag{Name: "mysql-client-bin", Usage: "client used to load dumps (default: mariadb or mysql on PATH)", EnvVars: []string{"SLIPWAY_MYSQL_CLIENT_BIN"}},
		&ucli.StringFlag{Name: "mongo-uri-file", Usage: "`FILE` holding the MongoDB URI (it may hold credentials); else SLIPWAY_MONGO_URI is used", EnvVars: []string{"SLIPWAY_MONGO_URI_FILE"}},
		&ucli.StringSliceFlag{Name: "mongo-database", Usage: "MongoDB database to back up (repeatable)", EnvVars: []string{"SLIPWAY_MONGO_DATABASES"}},
		&ucli.StringFlag{Name: "mongodump-bin", Usage: "mongodump tool (default: on PATH)", EnvVars: []string{"SLIPWAY_MONGODUMP_BIN"}},
		&ucli.StringFlag{Name: "mongorestore-bin", Usage: "mongorestore tool (default: on PATH)", EnvVars: []string{"SLIPWAY_MONGORESTORE_BIN"}},
		&ucli.BoolFlag{Name: "mongo-no-index-restore", Usage: "do not recreate indexes on restore (FerretDB)", EnvVars: []string{"SLIPWAY_MONGO_NO_INDEX_RESTORE"}},
	}
}

// latestFlag picks the newest complete backup instead of an ID argument.
func latestFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "latest", Usage: "the newest complete backup"}
}

// pickFlags choose the backup verify and restore work on (or its ID argument).
func pickFlags() []ucli.Flag {
	return []ucli.Flag{
		latestFlag(),
		&ucli.StringSliceFlag{Name: "age-identity-file", Usage: "age identity `FILE` to decrypt backups (repeatable)", EnvVars: []string{"SLIPWAY_AGE_IDENTITY_FILE"}},
	}
}

func concat(groups ...[]ucli.Flag) []ucli.Flag {
	var out []ucli.Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// flagNames names the options in errors by the flags (or variables) that
// set them.
var flagNames = backup.Names{
	"Site": "--site", "Compression": "--compression", "AgeRecipients": "--age-recipient", "AgeIdentityFiles": "--age-identity-file",
	"ID": "a backup ID", "Latest": "--latest", "MaxAge": "--max-age", "RestoreJobs": "--restore-jobs", "DumpJobs": "--dump-jobs",
	"S3.Bucket": "--s3-bucket", "S3.Prefix": "--s3-prefix", "S3.Endpoint": "--s3-endpoint", "S3.PartSize": "--s3-part-size", "S3.CAFile": "--s3-ca-file",
	"S3.AccessKey": "AWS_ACCESS_KEY_ID (or --s3-access-key-file)", "S3.SecretKey": "AWS_SECRET_ACCESS_KEY (or --s3-secret-key-file)",
	"MySQL.Host": "--mysql-host", "MySQL.Socket": "--mysql-socket", "MySQL.User": "--mysql-user", "MySQL.Databases": "--mysql-database",
	"Mongo.URI": "--mongo-uri-file (or SLIPWAY_MONGO_URI)", "Mongo.Databases": "--mongo-database",
	"Policy.Last": "--keep-last", "Policy.Daily": "--keep-daily", "Policy.Weekly": "--keep-weekly", "Policy.Monthly": "--keep-monthly",
}

// options is what the shared flag groups bind to; a command without a
// group's flags gets that group's zero values.
type options struct {
	backup.Common
	MySQL backup.MySQLConfig
	Mongo backup.MongoConfig
	// ID is the argument of a command that takes one (ArgsUsage: a backup ID).
	ID string
}

// runFunc does the work of a command that reaches S3.
type runFunc func(ctx context.Context, cliContext *ucli.Context, o options) error

// action is the prelude of every command that reaches S3: cli.Start, then
// the shared flag groups bound into the options, then run.
func action(run runFunc) ucli.ActionFunc { return cli.Action(bind, run) }

// bind reads the shared flag groups, their secrets and a command's backup ID
// argument into the options.
func bind(cliContext *ucli.Context) (options, error) {
	if cliContext.NArg() > 1 {
		return options{}, cli.Usagef("give one backup ID, got %d arguments", cliContext.NArg())
	}
	var err error
	secret := func(fileFlag, envVar string) logging.Secret {
		s, serr := secretFrom(cliContext, fileFlag, envVar)
		if err == nil {
			err = serr
		}
		return s
	}
	o := options{
		Common: backup.Common{
			S3: backup.S3Config{
				Endpoint: cliContext.String("s3-endpoint"), Region: cliContext.String("s3-region"),
				Bucket: cliContext.String("s3-bucket"), Prefix: cliContext.String("s3-prefix"),
				AccessKey: secret("s3-access-key-file", "AWS_ACCESS_KEY_ID"), SecretKey: secret("s3-secret-key-file", "AWS_SECRET_ACCESS_KEY"),
				CAFile: cliContext.String("s3-ca-file"), VirtualHost: cliContext.Bool("s3-virtual-host"),
				PartSize: cliContext.Int64("s3-part-size"),
			},
			Logger: slog.Default(),
			Names:  flagNames,
		},
		MySQL: backup.MySQLConfig{
			Host: cliContext.String("mysql-host"), Port: cliContext.Int("mysql-port"), Socket: cliContext.String("mysql-socket"),
			User: cliContext.String("mysql-user"), Password: secret("mysql-password-file", "SLIPWAY_MYSQL_PASSWORD"),
			Databases: cliContext.StringSlice("mysql-database"),
			DumpBin:   cliContext.String("mysql-dump-bin"), ClientBin: cliContext.String("mysql-client-bin"),
		},
		Mongo: backup.MongoConfig{
			URI: secret("mongo-uri-file", "SLIPWAY_MONGO_URI"), Databases: cliContext.StringSlice("mongo-database"),
			DumpBin: cliContext.String("mongodump-bin"), RestoreBin: cliContext.String("mongorestore-bin"),
			NoIndexRestore: cliContext.Bool("mongo-no-index-restore"),
		},
		ID: cliContext.Args().First(),
	}
	if err != nil {
		return options{}, err
	}
	// A URI's password also reaches logs in the driver's escaped form.
	if u, perr := url.Parse(o.Mongo.URI.Reveal()); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			logging.Register(p, url.QueryEscape(p))
		}
	}
	return o, nil
}

// secretFrom reads a secret from a file flag or, failing that, an env var,
// and registers it so that logs and errors never show it.
func secretFrom(cliContext *ucli.Context, fileFlag, envVar string) (logging.Secret, error) {
	s := os.Getenv(envVar)
	if p := cliContext.String(fileFlag); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", cli.Usagef("--%s: %w", fileFlag, err)
		}
		s = strings.TrimRight(string(b), "\r\n")
	}
	logging.Register(s)
	return logging.Secret(s), nil
}

// softMemoryLimit keeps the heap (and so the pod's RSS) near what a
// command's stream needs, limit bytes; GOMEMLIMIT overrides it.
func softMemoryLimit(limit int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}

// emit hands a command's BackupResult to cli.Emit (--result, then stdout).
func emit(cliContext *ucli.Context, o options, r result.BackupResult) error {
	r.Bucket, r.Prefix = o.S3.Bucket, o.S3.Prefix
	return cli.Emit(cliContext, cli.Output{Result: &r})
}
