package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum"
)

// kubeconfigCommand is `kubeconfig`, as `openstack coe cluster config`.
func kubeconfigCommand() *ucli.Command {
	output := &ucli.PathFlag{Name: "output", Aliases: []string{"o"}, Usage: "kubeconfig path (written 0600)", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}}
	return &ucli.Command{
		Name: "kubeconfig", Usage: "write a kubeconfig for the cluster (as `openstack coe cluster config`)",
		Flags: flags(nameFlags(), []ucli.Flag{output}), Action: cli.Action(bind, run(magnum.Kubeconfig, jsonOutput)),
		Description: "Generates an RSA key and a CSR for CN=admin, O=system:masters, has Magnum sign it, and writes a kubeconfig for the cluster's api_address. An existing kubeconfig for the same cluster and CA that is valid for another day is kept.\n\nExample: magnum-cluster kubeconfig --name openedx-prod --output kubeconfig",
	}
}
