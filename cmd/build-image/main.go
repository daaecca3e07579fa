// Command build-image builds container images without a Docker daemon, with
// Zuul-aware tags and labels, into OCI image layouts and a build result
// (see docs/build-image.md).
package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
)

func main() { cli.Main(app()) }

const example = `# every image of a build file, tags from the Zuul vars of the job
build-image --file images/build.yaml --output out/images --zuul-vars zuul-vars.yaml \
  --insecure-registry 127.0.0.1:5000 --build-arg BASE_IMAGE=127.0.0.1:5000/base/busybox:1.35

# one Dockerfile image from flags, reproducible
SOURCE_DATE_EPOCH=1700000000 build-image --context . --repository acme/openedx --tag latest --output out/images

# the backup image: Debian packages of a lock plus static binaries (docs/build-image.md)
build-image --file examples/images/backup/build.yaml --output out/backup-image \
  --build-arg BACKUP_BIN=$PWD/out/bin/backup --build-arg MONGODUMP_BIN=/usr/local/bin/mongodump \
  --build-arg MONGORESTORE_BIN=/usr/local/bin/mongorestore

# (re)generate a Debian lock: the packages and their dependencies, pinned
build-image lock-debian --lock examples/images/backup/backup.lock --package mariadb-client

# one native image: a directory added to a base, no Dockerfile
build-image --native --base 127.0.0.1:5000/base/busybox:1.35 --add site:/srv/site \
  --entrypoint /bin/httpd --repository acme/static --output out/images`

func app() *ucli.App {
	return cli.New(cli.App{
		Name:     "build-image",
		Usage:    "build container images without a Docker daemon, with Zuul-aware tags and labels",
		Example:  example,
		Flags:    flags(),
		Commands: []*ucli.Command{lockDebianCommand()},
		Action:   cli.Action(options, build),
	})
}
