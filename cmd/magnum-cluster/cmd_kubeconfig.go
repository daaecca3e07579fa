package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum"
)

// kubeconfigCommand is `kubeconfig`, as `openstack coe cluster config`.
func kubeconfigCommand() *ucli.Command {
	output := []ucli.Flag{
		&ucli.PathFlag{Name: "output", Aliases: []string{"o"}, Usage: "kubeconfig path (written 0600; a spec with regions: with --region only)", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}},
		&ucli.PathFlag{Name: "output-dir", Usage: "write each region's kubeconfig (0600) into `DIR` as DIR/<region>.kubeconfig", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG_DIR"}},
	}
	written := func(k *magnum.KubeconfigWritten) bool { return k.Written }
	return &ucli.Command{
		Name: "kubeconfig", Usage: "write a kubeconfig for the cluster (as `openstack coe cluster config`)",
		Flags:  flags(nameFlags(), output),
		Action: cli.Action(bind, perSpec(run(magnum.Kubeconfig, jsonOutput), inRegions(magnum.Kubeconfig, written, jsonOutput))),
		Description: "Generates an RSA key and a CSR for CN=admin, O=system:masters, has Magnum sign it, and writes a kubeconfig for the cluster's api_address. An existing kubeconfig for the same cluster and CA that is valid for another day is kept.\n\n" +
			"Example: magnum-cluster kubeconfig --name openedx-prod --output kubeconfig\n" +
			"A spec with regions: magnum-cluster kubeconfig --spec cluster.yaml --region RegionTwo --output kubeconfig-b (or --output-dir kube/)",
	}
}
