// Command magnum-cluster converges Magnum cluster templates and clusters from
// a spec file, waits for them, and writes a kubeconfig.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum"
)

func main() { cli.Main(magnum.App()) }
