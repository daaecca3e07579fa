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
