package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum"
)

// clusterCommand is `cluster ensure|diff|show|delete`: the cluster of a
// spec (or, for show and delete, of a name); with a spec that names
// regions, the cluster of each region.
func clusterCommand() *ucli.Command {
	spec := []ucli.Flag{specFlag()}
	kubeconfig := []ucli.Flag{
		&ucli.PathFlag{Name: "kubeconfig", Usage: "also write a kubeconfig (0600) here (a spec with regions: with --region only)", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}},
		&ucli.PathFlag{Name: "kubeconfig-dir", Usage: "also write each region's kubeconfig (0600) into `DIR` as DIR/<region>.kubeconfig", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG_DIR"}},
	}
	deleted := func(d *magnum.Deleted) bool { return d.Deleted }
	return &ucli.Command{Name: "cluster", Usage: "the cluster of a spec", Subcommands: []*ucli.Command{
		{Name: "ensure", Usage: "create the cluster, or resize/upgrade it to the spec (in each of its regions); wait; print the result",
			Flags:  flags(spec, waitFlags(), resultFlags(), kubeconfig),
			Action: cli.Action(bind, perSpec(run(magnum.ClusterEnsure, clusterOutput), run(magnum.ClustersEnsure, clustersOutput))),
			Description: "Example: magnum-cluster cluster ensure --spec cluster.yaml --result cluster.json --kubeconfig kubeconfig\n" +
				"A spec with regions: magnum-cluster cluster ensure --spec cluster.yaml --result clusters.json --kubeconfig-dir kube/ [--region RegionTwo]"},
		{Name: "diff", Usage: "show what cluster ensure would do (the plan); change nothing",
			Flags: flags(spec), Action: cli.Action(bind, perSpec(run(magnum.ClusterDiff, planOutput), inRegions(magnum.ClusterDiff, nil, regionPlanOutput))),
			Description: "Example: magnum-cluster cluster diff --spec cluster.yaml"},
		{Name: "show", Usage: "print the cluster as a ClusterResult (a spec with regions: a ClustersResult)",
			Flags: flags(nameFlags(), resultFlags()), Action: cli.Action(bind, perSpec(run(magnum.ClusterShow, clusterOutput), run(magnum.ClustersShow, clustersOutput))),
			Description: "Example: magnum-cluster cluster show --name openedx-prod"},
		{Name: "delete", Usage: "delete the cluster (in each region of the spec, or --region) and wait until it is gone",
			Flags: flags(nameFlags(), waitFlags()), Action: cli.Action(bind, perSpec(run(magnum.ClusterDelete, jsonOutput), inRegions(magnum.ClusterDelete, deleted, jsonOutput))),
			Description: "Example: magnum-cluster cluster delete --spec cluster.yaml --region RegionTwo"},
	}}
}
