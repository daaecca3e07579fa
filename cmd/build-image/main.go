// Command build-image: build container images without a Docker daemon, with Zuul-aware tags and labels.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(cli.New(cli.App{
		Name:   "build-image",
		Usage:  "build container images without a Docker daemon, with Zuul-aware tags and labels",
		Action: cli.NotBuilt("build-image", 3),
	}))
}
