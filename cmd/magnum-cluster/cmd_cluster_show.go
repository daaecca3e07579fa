package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func clusterShowCommand() *ucli.Command {
	return &ucli.Command{Name: "show", Usage: "print the cluster as a ClusterResult",
		Flags: flags(nameFlags(), resultFlags()), Action: action(run(magnum.ClusterShow, clusterOutput)),
		Description: "Example: magnum-cluster cluster show --name openedx-prod"}
}
