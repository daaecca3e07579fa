// Command magnum-cluster: converge Magnum cluster templates and clusters from a spec file and fetch a kubeconfig.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(cli.New(cli.App{
		Name:   "magnum-cluster",
		Usage:  "converge Magnum cluster templates and clusters from a spec file and fetch a kubeconfig",
		Action: cli.NotBuilt("magnum-cluster", 5),
	}))
}
