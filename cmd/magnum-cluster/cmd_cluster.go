package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum"
)

// clusterCommand is `cluster ensure|diff|show|delete`: the cluster of a
// spec (or, for show and delete, of a name).
func clusterCommand() *ucli.Command {
	spec := []ucli.Flag{specFlag()}
	kubeconfig := &ucli.PathFlag{Name: "kubeconfig", Usage: "also write a kubeconfig (0600) here", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}}
	return &ucli.Command{Name: "cluster", Usage: "the cluster of a spec", Subcommands: []*ucli.Command{
		{Name: "ensure", Usage: "create the cluster, or resize/upgrade it to the spec; wait; print the result",
			Flags: flags(spec, waitFlags(), resultFlags(), []ucli.Flag{kubeconfig}), Action: cli.Action(bind, run(magnum.ClusterEnsure, clusterOutput)),
			Description: "Example: magnum-cluster cluster ensure --spec cluster.yaml --result cluster.json --kubeconfig kubeconfig"},
		{Name: "diff", Usage: "show what cluster ensure would do (the plan); change nothing",
			Flags: flags(spec), Action: cli.Action(bind, run(magnum.ClusterDiff, planOutput)),
			Description: "Example: magnum-cluster cluster diff --spec cluster.yaml"},
		{Name: "show", Usage: "print the cluster as a ClusterResult",
			Flags: flags(nameFlags(), resultFlags()), Action: cli.Action(bind, run(magnum.ClusterShow, clusterOutput)),
			Description: "Example: magnum-cluster cluster show --name openedx-prod"},
		{Name: "delete", Usage: "delete the cluster and wait until it is gone",
			Flags: flags(nameFlags(), waitFlags()), Action: cli.Action(bind, run(magnum.ClusterDelete, jsonOutput)),
			Description: "Example: magnum-cluster cluster delete --spec cluster.yaml"},
	}}
}
