// Command deploy-k8s deploys a platform's manifests into the namespace its
// branch owns, pinned to the digests push-registry pushed, and can diff and
// roll back.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/deploy"
)

func main() {
	cli.Main(deploy.App())
}
