// Command push-registry pushes images to the registries of every region,
// verified, with tags moved only when all regions have them.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/push"
)

func main() {
	cli.Main(push.App())
}
