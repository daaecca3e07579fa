// Command backup streams MySQL and MongoDB dumps to S3 and restores the
// newest good backup at the DR site (see docs/backup.md).
package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(app())
}

func app() *ucli.App {
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
		Commands: []*ucli.Command{createCommand(), listCommand(), showCommand(), verifyCommand(), restoreCommand(), pruneCommand(), statusCommand(), freezeCommand(), unfreezeCommand(), cronjobCommand()},
	})
}
