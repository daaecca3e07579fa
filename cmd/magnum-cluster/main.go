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
    --spec examples/cluster/local.yaml --result cluster.json --kubeconfig kubeconfig
# a spec with regions: every region in parallel, a kubeconfig per region (kube/RegionTwo.kubeconfig)
OS_CLOUD=prod magnum-cluster cluster ensure --spec examples/cluster/production.yaml \
    --result clusters.json --kubeconfig-dir kube/ [--region RegionTwo] [--region-cloud RegionTwo=prod-b]
# only the kubeconfig, as "openstack coe cluster config" does
magnum-cluster kubeconfig --name openedx-prod --output ~/.kube/openedx-prod
# delete (waits until gone; nothing to do if it does not exist); with regions: every region, or --region R
magnum-cluster cluster delete --spec examples/cluster/production.yaml`

func app() *ucli.App {
	return cli.New(cli.App{
		Name:     "magnum-cluster",
		Usage:    "converge Magnum cluster templates and clusters from a spec file and fetch a kubeconfig",
		Example:  example,
		Commands: []*ucli.Command{templateCommand(), clusterCommand(), kubeconfigCommand()},
	})
}
