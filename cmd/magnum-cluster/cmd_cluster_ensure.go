package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func clusterEnsureCommand() *ucli.Command {
	return &ucli.Command{Name: "ensure", Usage: "create the cluster, or resize/upgrade it to the spec; wait; print the result",
		Flags: flags([]ucli.Flag{specFlag()}, waitFlags(), resultFlags(), []ucli.Flag{
			&ucli.PathFlag{Name: "kubeconfig", Usage: "also write a kubeconfig (0600) here", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}},
		}),
		Action:      action(run(magnum.ClusterEnsure, clusterOutput)),
		Description: "Example: magnum-cluster cluster ensure --spec cluster.yaml --result cluster.json --kubeconfig kubeconfig"}
}
