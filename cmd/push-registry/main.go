// Command push-registry pushes images to the registries of every region,
// verified, with tags moved only when all regions have them.
package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(app())
}

const example = `# push build-image's images to both regions, tags moved only when both have them
push-registry push --build-result build.json \
  --region a=registry.a.example:5000/acme --region b=registry.b.example:5000/acme \
  --result push.json --zuul-return zuul_return.json

# one OCI layout, regions from a targets file, credentials from a Zuul secret
push-registry push --source oci:out/openedx --repository acme/openedx --tag v1 \
  --targets regions.yaml --secrets-file secrets.yaml

# gate→post: copy from the buildset registry by digest, then tag
push-registry promote --build-result build.json --from-registry buildset:5000 \
  --targets regions.yaml --tag latest

# check a push result against the live registries
push-registry verify --result push.json --targets regions.yaml`

func app() *ucli.App {
	return cli.New(cli.App{
		Name:    "push-registry",
		Usage:   "push images to the registries of every region, verified, tags moved only when all regions have them",
		Example: example,
		Commands: []*ucli.Command{
			pushCommand("push", "push images to every region (blobs and manifests by digest, verify, then tags)", false),
			pushCommand("promote", "copy images from an intermediate registry by digest to every region, then tag them", true),
			verifyCommand(),
		},
	})
}
