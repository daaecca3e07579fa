package magnum

import (
	"context"
	"log/slog"
	"os"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/progress"
)

const example = `# what would change (nothing is changed)
OS_CLOUD=prod magnum-cluster cluster diff --spec examples/cluster/production.yaml
# create or converge the template and the cluster, wait, write the result and a kubeconfig
OS_CLOUD=prod OS_REGION_NAME=RegionOne magnum-cluster cluster ensure \
    --spec examples/cluster/production.yaml --result cluster.json --kubeconfig kubeconfig
# only the kubeconfig, as "openstack coe cluster config" does
magnum-cluster kubeconfig --name openedx-prod --output ~/.kube/openedx-prod
# delete (waits until gone; nothing to do if it does not exist)
magnum-cluster cluster delete --spec examples/cluster/production.yaml`

// App is the magnum-cluster command line.
func App() *ucli.App {
	run := func(f func(context.Context, Options) error) ucli.ActionFunc {
		return func(cliContext *ucli.Context) error {
			o, err := optionsFrom(cliContext)
			if err != nil {
				return err
			}
			return f(cliContext.Context, o)
		}
	}
	specFlag := &ucli.PathFlag{Name: "spec", Aliases: []string{"f"}, Usage: "spec file (template + cluster), e.g. examples/cluster/production.yaml", EnvVars: []string{"SLIPWAY_CLUSTER_SPEC"}}
	nameFlag := &ucli.StringFlag{Name: "name", Usage: "cluster name, when there is no --spec", EnvVars: []string{"SLIPWAY_CLUSTER_NAME"}}
	waitFlags := []ucli.Flag{
		&ucli.DurationFlag{Name: "wait-timeout", Usage: "give up waiting after this long (default: create_timeout+10m for creates, 1h otherwise)", EnvVars: []string{"SLIPWAY_CLUSTER_WAIT_TIMEOUT"}},
		&ucli.DurationFlag{Name: "poll-interval", Value: 5 * time.Second, Usage: "first pause between status polls; grows to 30s", EnvVars: []string{"SLIPWAY_CLUSTER_POLL_INTERVAL"}},
	}
	resultFlags := append([]ucli.Flag{
		&ucli.PathFlag{Name: "result", Usage: "write the ClusterResult JSON here too (it is always printed on stdout)", EnvVars: []string{"SLIPWAY_CLUSTER_RESULT"}},
	}, cli.ZuulFlags()...)
	flags := func(groups ...[]ucli.Flag) []ucli.Flag {
		out := []ucli.Flag{}
		for _, g := range groups {
			out = append(out, g...)
		}
		return append(out, cli.OpenStackFlags()...)
	}
	specOnly := []ucli.Flag{specFlag}
	specOrName := []ucli.Flag{specFlag, nameFlag}
	return cli.New(cli.App{
		Name:    "magnum-cluster",
		Usage:   "converge Magnum cluster templates and clusters from a spec file and fetch a kubeconfig",
		Example: example,
		Commands: []*ucli.Command{
			{
				Name:  "template",
				Usage: "the cluster template of a spec",
				Subcommands: []*ucli.Command{
					{Name: "ensure", Usage: "create the spec's template version if missing; print it as JSON", Flags: flags(specOnly), Action: run(TemplateEnsure),
						Description: "A template's Magnum name is the spec's template.name plus a hash of the rest: a changed spec makes a new template, because Magnum templates in use cannot change.\n\nExample: magnum-cluster template ensure --spec cluster.yaml"},
					{Name: "diff", Usage: "show what template ensure would do", Flags: flags(specOnly), Action: run(TemplateDiff),
						Description: "Example: magnum-cluster template diff --spec cluster.yaml"},
					{Name: "delete", Usage: "delete the spec's template version (--all-versions: every unused version)", Action: run(TemplateDelete),
						Flags:       flags(specOnly, []ucli.Flag{&ucli.BoolFlag{Name: "all-versions", Usage: "delete every version of template.name that no cluster uses"}}),
						Description: "Example: magnum-cluster template delete --spec cluster.yaml --all-versions"},
				},
			},
			{
				Name:  "cluster",
				Usage: "the cluster of a spec",
				Subcommands: []*ucli.Command{
					{Name: "ensure", Usage: "create the cluster, or resize/upgrade it to the spec; wait; print the result", Action: run(ClusterEnsure),
						Flags: flags(specOnly, waitFlags, resultFlags, []ucli.Flag{
							&ucli.PathFlag{Name: "kubeconfig", Usage: "also write a kubeconfig (0600) here", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}},
						}),
						Description: "Example: magnum-cluster cluster ensure --spec cluster.yaml --result cluster.json --kubeconfig kubeconfig"},
					{Name: "diff", Usage: "show what cluster ensure would do (the plan); change nothing", Flags: flags(specOnly), Action: run(ClusterDiff),
						Description: "Example: magnum-cluster cluster diff --spec cluster.yaml"},
					{Name: "show", Usage: "print the cluster as a ClusterResult", Flags: flags(specOrName, resultFlags), Action: run(ClusterShow),
						Description: "Example: magnum-cluster cluster show --name openedx-prod"},
					{Name: "delete", Usage: "delete the cluster and wait until it is gone", Flags: flags(specOrName, waitFlags), Action: run(ClusterDelete),
						Description: "Example: magnum-cluster cluster delete --spec cluster.yaml"},
				},
			},
			{
				Name: "kubeconfig", Usage: "write a kubeconfig for the cluster (as `openstack coe cluster config`)", Action: run(Kubeconfig),
				Flags:       flags(specOrName, []ucli.Flag{&ucli.PathFlag{Name: "output", Aliases: []string{"o"}, Usage: "kubeconfig path (written 0600)", EnvVars: []string{"SLIPWAY_CLUSTER_KUBECONFIG"}}}),
				Description: "Generates an RSA key and a CSR for CN=admin, O=system:masters, has Magnum sign it, and writes a kubeconfig for the cluster's api_address. An existing kubeconfig for the same cluster and CA that is valid for another day is kept.\n\nExample: magnum-cluster kubeconfig --name openedx-prod --output kubeconfig",
			},
		},
	})
}

// optionsFrom binds the flags of the running command into Options.
func optionsFrom(cliContext *ucli.Context) (Options, error) {
	o := Options{
		Auth:        cli.OpenStackAuth(cliContext, "magnum-cluster"),
		ClusterName: cliContext.String("name"),
		ResultFile:  cliContext.Path("result"),
		ZuulReturn:  cliContext.Path("zuul-return"),
		WaitTimeout: cliContext.Duration("wait-timeout"), PollInterval: cliContext.Duration("poll-interval"),
		AllVersions: cliContext.Bool("all-versions"),
		Out:         cliContext.App.Writer,
		Progress:    progress.New(cliContext.App.ErrWriter),
		Log:         slog.Default(),
	}
	o.Kubeconfig = cliContext.Path("kubeconfig")
	if p := cliContext.Path("output"); p != "" {
		o.Kubeconfig = p
	}
	if path := cliContext.Path("spec"); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return o, cli.Usagef("reading the spec (--spec): %w", err)
		}
		defer f.Close()
		spec, err := LoadSpec(f, path)
		if err != nil {
			return o, cli.AsUsage(err)
		}
		o.Spec, o.SpecFile = spec, path
	}
	if o.Spec != nil && o.ClusterName != "" && o.ClusterName != o.Spec.Cluster.Name {
		return o, cli.Usagef("--name %s and the spec's cluster.name %s disagree: give one of them", o.ClusterName, o.Spec.Cluster.Name)
	}
	if cliContext.IsSet("zuul-vars") || cliContext.IsSet("zuul-return") || cliContext.IsSet("result") {
		z, err := cli.ZuulContext(cliContext)
		if err != nil {
			return o, err
		}
		o.Zuul = z
	}
	if o.WaitTimeout < 0 || cliContext.IsSet("poll-interval") && o.PollInterval <= 0 {
		return o, cli.Usagef("--wait-timeout and --poll-interval must be positive")
	}
	if o.PollInterval > 0 && o.MaxPollInterval == 0 {
		o.MaxPollInterval = max(30*time.Second, o.PollInterval)
	}
	return o, nil
}
