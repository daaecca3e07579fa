package deploy

import (
	"fmt"
	"log/slog"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/version"
)

const example = `# deploy the platform branch's Tutor env into its namespace, pinned to pushed digests
deploy-k8s deploy --branch platform/acme --manifests env/ \
  --push-result push.json --region RegionOne --kubeconfig kubeconfig \
  --job lms-job --job cms-job --result deploy.json

# what would change (server-side dry run), and going back
deploy-k8s diff --branch platform/acme --manifests env/ --push-result push.json --region RegionOne
deploy-k8s rollback --branch platform/acme
deploy-k8s namespace --branch platform/acme      # prints: acme`

// App is the deploy-k8s command line.
func App() *ucli.App {
	return cli.New(cli.App{
		Name:    "deploy-k8s",
		Usage:   "deploy a platform's manifests into its branch's namespace, pinned to pushed digests",
		Example: example,
		Commands: []*ucli.Command{
			command("deploy", "apply the manifests (server-side apply), prune, wait for the rollout, run jobs, record a revision",
				append(renderFlags(), applyFlags()...), runDeploy),
			command("diff", "show what deploy would change (server-side dry run); changes nothing", renderFlags(), runDiff),
			command("rollback", "re-apply the previous good revision (or --to-revision)",
				append(applyFlags(), &ucli.IntFlag{Name: "to-revision", Usage: "revision `N` to return to (default: the previous good one)"}), runRollback),
			command("run-job", "run Job templates of the live revision once (unique name, logs streamed, exit with its result)",
				[]ucli.Flag{jobFlag(), jobCleanupFlag(), timeoutFlag()}, runRunJob),
			{
				Name:      "namespace",
				Usage:     "print the namespace a branch deploys into",
				UsageText: "deploy-k8s namespace --branch platform/acme",
				Flags:     branchFlags(),
				Action: func(cliContext *ucli.Context) error {
					ns, err := NamespaceFor(cliContext.String("branch"), cliContext.String("branch-prefix"), cliContext.String("namespace-prefix"))
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(cliContext.App.Writer, ns)
					return err
				},
			},
		},
	})
}

func branchFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "branch", Usage: "platform `BRANCH` (default: zuul.branch)", EnvVars: []string{"SLIPWAY_BRANCH"}},
		&ucli.StringFlag{Name: "branch-prefix", Value: DefaultBranchPrefix, Usage: "prefix that marks platform branches; removed to get the namespace", EnvVars: []string{"SLIPWAY_BRANCH_PREFIX"}},
		&ucli.StringFlag{Name: "namespace-prefix", Usage: "put `PREFIX` in front of every namespace name", EnvVars: []string{"SLIPWAY_NAMESPACE_PREFIX"}},
	}
}

func clusterFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.PathFlag{Name: "kubeconfig", Usage: "kubeconfig `FILE` (magnum-cluster writes one)", EnvVars: []string{"KUBECONFIG"}},
		&ucli.StringFlag{Name: "context", Usage: "kubeconfig `CONTEXT` (default: current)", EnvVars: []string{"SLIPWAY_KUBE_CONTEXT"}},
		&ucli.BoolFlag{Name: "adopt-namespace", Usage: "take over an existing namespace that no branch owns"},
		&ucli.PathFlag{Name: "result", Usage: "write the deploy result (JSON) to `FILE`", EnvVars: []string{"SLIPWAY_DEPLOY_RESULT"}},
	}
}

func renderFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.PathFlag{Name: "manifests", Usage: "kustomize `DIR` (Tutor's env/), directory of manifests, or one file", EnvVars: []string{"SLIPWAY_MANIFESTS"}},
		&ucli.PathFlag{Name: "push-result", Usage: "push-registry result `FILE`: every image is pinned to its digest", EnvVars: []string{"SLIPWAY_PUSH_RESULT"}},
		&ucli.StringFlag{Name: "region", Usage: "`REGION` whose registry the cluster pulls from", EnvVars: []string{"SLIPWAY_REGION", "OS_REGION_NAME"}},
		&ucli.StringSliceFlag{Name: "allow-image", Usage: "repository `GLOB` deployed as written, not from the push result (repeatable)", EnvVars: []string{"SLIPWAY_ALLOW_IMAGES"}},
		&ucli.BoolFlag{Name: "allow-cluster-scoped", Usage: "let the manifests create cluster-scoped objects"},
	}
}

func jobFlag() ucli.Flag {
	return &ucli.StringSliceFlag{Name: "job", Usage: "Job template `NAME` to run after the rollout (repeatable, in order)", EnvVars: []string{"SLIPWAY_JOBS"}}
}

func jobCleanupFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "job-cleanup", Value: CleanupOnSuccess, Usage: "delete run jobs: always, on-success or never", EnvVars: []string{"SLIPWAY_JOB_CLEANUP"}}
}

func timeoutFlag() ucli.Flag {
	return &ucli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "how long to wait for the rollout, and for each job", EnvVars: []string{"SLIPWAY_TIMEOUT"}}
}

func applyFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "no-prune", Usage: "keep objects the manifests no longer contain"},
		&ucli.BoolFlag{Name: "no-wait", Usage: "do not wait for workloads to roll out"},
		timeoutFlag(), jobFlag(), jobCleanupFlag(),
		&ucli.IntFlag{Name: "keep-revisions", Value: defaultKeepRecords, Usage: "revision records kept in the namespace", EnvVars: []string{"SLIPWAY_KEEP_REVISIONS"}},
	}
}

func command(name, usage string, flags []ucli.Flag, run func(*ucli.Context, Options) error) *ucli.Command {
	all := append(append(append(branchFlags(), clusterFlags()...), flags...), cli.ZuulFlags()...)
	return &ucli.Command{
		Name:      name,
		Usage:     usage,
		UsageText: "deploy-k8s " + name + " [options]\n\n" + example,
		Flags:     all,
		Action: func(cliContext *ucli.Context) error {
			if cliContext.NArg() > 0 {
				return cli.Usagef("%s takes no arguments, got %q", name, cliContext.Args().First())
			}
			opts, err := optionsFrom(cliContext)
			if err != nil {
				return err
			}
			return run(cliContext, opts)
		},
	}
}

// optionsFrom binds the flags a command has into Options.
func optionsFrom(cliContext *ucli.Context) (Options, error) {
	zc, err := cli.ZuulContext(cliContext)
	if err != nil {
		return Options{}, err
	}
	opts := Options{
		Kubeconfig:         cliContext.Path("kubeconfig"),
		Context:            cliContext.String("context"),
		Branch:             cliContext.String("branch"),
		BranchPrefix:       cliContext.String("branch-prefix"),
		NamespacePrefix:    cliContext.String("namespace-prefix"),
		AdoptNamespace:     cliContext.Bool("adopt-namespace"),
		Manifests:          cliContext.Path("manifests"),
		PushResult:         cliContext.Path("push-result"),
		Region:             cliContext.String("region"),
		AllowImages:        cliContext.StringSlice("allow-image"),
		AllowClusterScoped: cliContext.Bool("allow-cluster-scoped"),
		NoPrune:            cliContext.Bool("no-prune"),
		NoWait:             cliContext.Bool("no-wait"),
		Timeout:            cliContext.Duration("timeout"),
		Jobs:               cliContext.StringSlice("job"),
		JobCleanup:         cliContext.String("job-cleanup"),
		KeepRevisions:      cliContext.Int("keep-revisions"),
		ToRevision:         cliContext.Int("to-revision"),
		ResultFile:         cliContext.Path("result"),
		ZuulReturn:         cliContext.Path("zuul-return"),
		UserAgent:          "slipway-deploy-k8s/" + version.Version,
		Log:                slog.Default(),
		Progress:           progress.New(cliContext.App.ErrWriter),
		Out:                cliContext.App.ErrWriter,
	}
	if zc != nil {
		opts.Zuul = zc.ResultRef()
		if opts.Branch == "" {
			opts.Branch = zc.Branch
		}
		if zc.Change != "" {
			opts.Change = "change " + zc.Change + "," + zc.Patchset
		} else if r := zc.Revision(); r != "" {
			opts.Change = "commit " + r
		}
	}
	return opts, nil
}

// printResult writes the one-line summary scripts read on stdout.
func printResult(cliContext *ucli.Context, res *result.DeployResult) {
	if res == nil {
		return
	}
	fmt.Fprintf(cliContext.App.Writer, "namespace=%s revision=%d changed=%t created=%d configured=%d unchanged=%d pruned=%d\n",
		res.Namespace, res.Revision, res.Changed, res.Created, res.Configured, res.Unchanged, len(res.Pruned))
}

func runDeploy(cliContext *ucli.Context, opts Options) error {
	res, err := Deploy(cliContext.Context, opts)
	printResult(cliContext, res)
	return err
}

func runRollback(cliContext *ucli.Context, opts Options) error {
	res, err := Rollback(cliContext.Context, opts)
	printResult(cliContext, res)
	return err
}

func runRunJob(cliContext *ucli.Context, opts Options) error {
	res, err := RunJob(cliContext.Context, opts)
	if res != nil {
		for _, j := range res.Jobs {
			fmt.Fprintf(cliContext.App.Writer, "job=%s template=%s succeeded=%t\n", j.Name, j.Template, j.Succeeded)
		}
	}
	return err
}

func runDiff(cliContext *ucli.Context, opts Options) error {
	opts.Out = cliContext.App.Writer
	_, err := Diff(cliContext.Context, opts)
	return err
}
