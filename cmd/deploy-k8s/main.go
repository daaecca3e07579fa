// Command deploy-k8s: deploy a platform's manifests into its branch's namespace, pinned to pushed digests.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(cli.New(cli.App{
		Name:   "deploy-k8s",
		Usage:  "deploy a platform's manifests into its branch's namespace, pinned to pushed digests",
		Action: cli.NotBuilt("deploy-k8s", 6),
	}))
}
