package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func kubeconfigCommand() *ucli.Command {
	return &ucli.Command{
		Name: "kubeconfig", Usage: "write a kubeconfig for the cluster (as `openstack coe cluster config`)",
		Flags:       flags(nameFlags(), []ucli.Flag{&ucli.PathFlag{Name: "output", Aliases: []string{"o"}, Usage: "kubeconfig path (written 0600)", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}}}),
		Action:      action(run(magnum.Kubeconfig, jsonOutput)),
		Description: "Generates an RSA key and a CSR for CN=admin, O=system:masters, has Magnum sign it, and writes a kubeconfig for the cluster's api_address. An existing kubeconfig for the same cluster and CA that is valid for another day is kept.\n\nExample: magnum-cluster kubeconfig --name openedx-prod --output kubeconfig",
	}
}
