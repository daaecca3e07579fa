package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func clusterDiffCommand() *ucli.Command {
	return &ucli.Command{Name: "diff", Usage: "show what cluster ensure would do (the plan); change nothing",
		Flags: flags([]ucli.Flag{specFlag()}), Action: action(run(magnum.ClusterDiff, planOutput)),
		Description: "Example: magnum-cluster cluster diff --spec cluster.yaml"}
}
