// Command build-image builds container images without a Docker daemon, with
// Zuul-aware tags and labels, into OCI image layouts and a build result.
package main

import (
	"github.com/slipwayci/slipway/internal/buildimage"
	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(cli.New(cli.App{
		Name:    "build-image",
		Usage:   "build container images without a Docker daemon, with Zuul-aware tags and labels",
		Example: buildimage.Example,
		Flags:   buildimage.Flags(),
		Action:  buildimage.Action,
	}))
}
