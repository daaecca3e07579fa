package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func clusterDeleteCommand() *ucli.Command {
	return &ucli.Command{Name: "delete", Usage: "delete the cluster and wait until it is gone",
		Flags: flags(nameFlags(), waitFlags()), Action: action(run(magnum.ClusterDelete, jsonOutput)),
		Description: "Example: magnum-cluster cluster delete --spec cluster.yaml"}
}
