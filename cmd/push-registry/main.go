// Command push-registry: push images to the registries of every region, verified, tags moved only when all regions have them.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(cli.New(cli.App{
		Name:   "push-registry",
		Usage:  "push images to the registries of every region, verified, tags moved only when all regions have them",
		Action: cli.NotBuilt("push-registry", 4),
	}))
}
