// Command deploy-k8s deploys a platform's manifests into the namespace its
// branch owns, pinned to the digests push-registry pushed, and can diff and
// roll back (see docs/deploy-k8s.md).
package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(app())
}

const example = `# deploy the platform branch's Tutor env into its namespace, pinned to pushed digests
deploy-k8s deploy --branch platform/acme --manifests env/ \
  --push-result push.json --region RegionOne --kubeconfig kubeconfig \
  --job lms-job --job cms-job --result deploy.json

# what would change (server-side dry run), and going back
deploy-k8s diff --branch platform/acme --manifests env/ --push-result push.json --region RegionOne
deploy-k8s rollback --branch platform/acme
deploy-k8s namespace --branch platform/acme      # prints: acme

# the DR site (region B) as a standby, with the backup CronJobs and their Secrets
deploy-k8s deploy --standby --branch platform/acme --manifests env/ --manifests restore-cronjob.yaml \
  --secrets-file secrets-b.yaml --push-result push.json --region RegionTwo --kubeconfig kubeconfig-b
deploy-k8s status --branch platform/acme --kubeconfig kubeconfig-b --expect standby
deploy-k8s set-mode --mode active --branch platform/acme --kubeconfig kubeconfig-b   # failover: DR serves

# run a (suspended) backup CronJob's job once, e.g. a failover's restore at the DR site
deploy-k8s run-job --cronjob acme-backup-restore --branch platform/acme --kubeconfig kubeconfig-b --result restore.json`

func app() *ucli.App {
	return cli.New(cli.App{
		Name:     "deploy-k8s",
		Usage:    "deploy a platform's manifests into its branch's namespace, pinned to pushed digests",
		Example:  example,
		Commands: []*ucli.Command{deployCommand(), diffCommand(), rollbackCommand(), runJobCommand(), setModeCommand(), statusCommand(), namespaceCommand()},
	})
}
