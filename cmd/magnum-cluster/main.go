// Command magnum-cluster converges Magnum cluster templates and clusters from
// a spec file, waits for them, and writes a kubeconfig (see
// docs/magnum-cluster.md).
package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
)

func main() { cli.Main(app()) }

const example = `# what would change (nothing is changed)
OS_CLOUD=prod magnum-cluster cluster diff --spec examples/cluster/production.yaml
# create or converge the template and the cluster, wait, write the result and a kubeconfig
OS_CLOUD=prod OS_REGION_NAME=RegionOne magnum-cluster cluster ensure \
    --spec examples/cluster/production.yaml --result cluster.json --kubeconfig kubeconfig
# only the kubeconfig, as "openstack coe cluster config" does
magnum-cluster kubeconfig --name openedx-prod --output ~/.kube/openedx-prod
# delete (waits until gone; nothing to do if it does not exist)
magnum-cluster cluster delete --spec examples/cluster/production.yaml`

func app() *ucli.App {
	return cli.New(cli.App{
		Name:     "magnum-cluster",
		Usage:    "converge Magnum cluster templates and clusters from a spec file and fetch a kubeconfig",
		Example:  example,
		Commands: []*ucli.Command{templateCommand(), clusterCommand(), kubeconfigCommand()},
	})
}
