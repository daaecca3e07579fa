package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/deploy"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/version"
)

func branchFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "branch", Usage: "platform `BRANCH` (default: zuul.branch)", EnvVars: []string{"SLIPWAY_BRANCH"}},
		&ucli.StringFlag{Name: "branch-prefix", Value: deploy.DefaultBranchPrefix, Usage: "prefix that marks platform branches; removed to get the namespace", EnvVars: []string{"SLIPWAY_BRANCH_PREFIX"}},
		&ucli.StringFlag{Name: "namespace-prefix", Usage: "put `PREFIX` in front of every namespace name", EnvVars: []string{"SLIPWAY_NAMESPACE_PREFIX"}},
	}
}

// kubeFlags choose the cluster.
func kubeFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.PathFlag{Name: "kubeconfig", Usage: "kubeconfig `FILE` (magnum-cluster writes one)", EnvVars: []string{"KUBECONFIG"}},
		&ucli.StringFlag{Name: "context", Usage: "kubeconfig `CONTEXT` (default: current)", EnvVars: []string{"SLIPWAY_KUBE_CONTEXT"}},
	}
}

func clusterFlags() []ucli.Flag {
	return append(kubeFlags(),
		&ucli.BoolFlag{Name: "adopt-namespace", Usage: "take over an existing namespace that no branch owns"},
		cli.ResultFlag("deploy", "SLIPWAY_DEPLOY_RESULT"),
	)
}

func renderFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringSliceFlag{Name: "manifests", Usage: "kustomize `DIR` (Tutor's env/), directory of manifests, or one file; repeatable: all are deployed together (e.g. the platform and the backup CronJobs)", EnvVars: []string{"SLIPWAY_MANIFESTS"}, TakesFile: true},
		&ucli.PathFlag{Name: "secrets-file", Usage: "0600 YAML `FILE` {secrets: {NAME: {KEY: VALUE}}}: Secrets applied with the manifests (values never logged or recorded)", EnvVars: []string{"SLIPWAY_SECRETS_FILE"}},
		&ucli.BoolFlag{Name: "standby", Usage: "deploy the site as a standby: application workloads at 0 replicas (their autoscalers left out, --job not run), data stores running", EnvVars: []string{"SLIPWAY_STANDBY"}},
		&ucli.StringSliceFlag{Name: "standby-scale-down", Usage: "application workload `NAME` glob or LABEL=VALUE a standby scales to 0 (repeatable; default: " + strings.Join(deploy.DefaultScaleDown, ", ") + ")", EnvVars: []string{"SLIPWAY_STANDBY_SCALE_DOWN"}},
		&ucli.PathFlag{Name: "push-result", Usage: "push-registry result `FILE`: every image is pinned to its digest", EnvVars: []string{"SLIPWAY_PUSH_RESULT"}},
		&ucli.StringFlag{Name: "region", Usage: "`REGION` whose registry the cluster pulls from", EnvVars: []string{"SLIPWAY_REGION", "OS_REGION_NAME"}},
		&ucli.StringFlag{Name: "pull-address", Value: deploy.PullNode, Usage: "registry address images are pinned to: node (where the region's nodes pull, e.g. localhost:5000) or ci (where CI pushed, for clusters on a shared registry)", EnvVars: []string{"SLIPWAY_PULL_ADDRESS"}},
		&ucli.StringSliceFlag{Name: "allow-image", Usage: "repository `GLOB` deployed as written, not from the push result (repeatable)", EnvVars: []string{"SLIPWAY_ALLOW_IMAGES"}},
		&ucli.BoolFlag{Name: "allow-cluster-scoped", Usage: "let the manifests create cluster-scoped objects"},
	}
}

// jobFlags choose the one-off jobs and what becomes of them.
func jobFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringSliceFlag{Name: "job", Usage: "Job template `NAME` to run after the rollout (repeatable, in order)", EnvVars: []string{"SLIPWAY_JOBS"}},
		&ucli.StringFlag{Name: "job-cleanup", Value: deploy.CleanupOnSuccess, Usage: "delete run jobs: always, on-success or never", EnvVars: []string{"SLIPWAY_JOB_CLEANUP"}},
	}
}

// timeoutFlag bounds the whole command, rollout and jobs included.
func timeoutFlag() ucli.Flag { return cli.TimeoutFlag(10 * time.Minute) }

// noWaitFlag and keepRevisionsFlag are on every command that applies a
// revision (deploy, rollback, set-mode).
func noWaitFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "no-wait", Usage: "do not wait for workloads to roll out"}
}

func keepRevisionsFlag() ucli.Flag {
	return &ucli.IntFlag{Name: "keep-revisions", Value: deploy.DefaultKeepRevisions, Usage: "revision records kept in the namespace", EnvVars: []string{"SLIPWAY_KEEP_REVISIONS"}}
}

func applyFlags() []ucli.Flag {
	flags := []ucli.Flag{
		&ucli.BoolFlag{Name: "no-prune", Usage: "keep objects the manifests no longer contain"},
		noWaitFlag(),
		timeoutFlag(),
	}
	return append(append(flags, jobFlags()...), keepRevisionsFlag())
}

// command is a subcommand that acts on a branch's namespace: the branch,
// cluster and Zuul flags around its own; its flags bind into
// deploy.Options, and an error an option resolves names its flag.
func command(name, usage string, flags []ucli.Flag, run func(context.Context, *ucli.Context, deploy.Options) error) *ucli.Command {
	all := append(append(append(branchFlags(), clusterFlags()...), flags...), cli.ZuulFlags()...)
	return &ucli.Command{
		Name:      name,
		Usage:     usage,
		UsageText: "deploy-k8s " + name + " [options]\n\n" + example,
		Flags:     all,
		Action: cli.Action(bind, func(ctx context.Context, cliContext *ucli.Context, opts deploy.Options) error {
			return withFlag(run(ctx, cliContext, opts))
		}),
	}
}

// bind reads the flags a command has into deploy.Options.
func bind(cliContext *ucli.Context) (deploy.Options, error) {
	zc, err := cli.ZuulContext(cliContext)
	if err != nil {
		return deploy.Options{}, err
	}
	opts := deploy.Options{
		Kubeconfig:         cliContext.Path("kubeconfig"),
		Context:            cliContext.String("context"),
		Branch:             cliContext.String("branch"),
		BranchPrefix:       cliContext.String("branch-prefix"),
		NamespacePrefix:    cliContext.String("namespace-prefix"),
		AdoptNamespace:     cliContext.Bool("adopt-namespace"),
		Manifests:          cliContext.StringSlice("manifests"),
		SecretsFile:        cliContext.Path("secrets-file"),
		Standby:            cliContext.Bool("standby"),
		ScaleDown:          cliContext.StringSlice("standby-scale-down"),
		Expect:             cliContext.String("expect"),
		Mode:               cliContext.String("mode"),
		PushResult:         cliContext.Path("push-result"),
		Region:             cliContext.String("region"),
		PullAddress:        cliContext.String("pull-address"),
		AllowImages:        cliContext.StringSlice("allow-image"),
		AllowClusterScoped: cliContext.Bool("allow-cluster-scoped"),
		NoPrune:            cliContext.Bool("no-prune"),
		NoWait:             cliContext.Bool("no-wait"),
		Jobs:               cliContext.StringSlice("job"),
		CronJobs:           cliContext.StringSlice("cronjob"),
		JobCleanup:         cliContext.String("job-cleanup"),
		KeepRevisions:      cliContext.Int("keep-revisions"),
		ToRevision:         cliContext.Int("to-revision"),
		UserAgent:          version.UserAgent("deploy-k8s"),
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

// optionFlags says, for an error another option value avoids, which flag
// sets that option.
var optionFlags = map[string]string{
	"Branch":             "set --branch",
	"BranchPrefix":       "set --branch-prefix to change the prefix",
	"NamespacePrefix":    "see --namespace-prefix",
	"AdoptNamespace":     "pass --adopt-namespace to take it over",
	"Manifests":          "set --manifests",
	"Region":             "choose the region with --region",
	"PullAddress":        "set --pull-address",
	"AllowImages":        "see --allow-image",
	"AllowClusterScoped": "pass --allow-cluster-scoped",
	"Jobs":               "set --job",
	"JobOrCronJob":       "give --job TEMPLATE (a Job template of the live revision) or --cronjob NAME (a CronJob of the namespace)",
	"ScaleDown":          "see --standby-scale-down",
	"Expect":             "set --expect",
	"Mode":               "set --mode",
	"JobCleanup":         "set --job-cleanup",
}

// withFlag ends an error that an option resolves with the flag to use.
func withFlag(err error) error {
	var oe *deploy.OptionError
	if errors.As(err, &oe) {
		if hint, ok := optionFlags[oe.Option]; ok {
			return fmt.Errorf("%w; %s", err, hint)
		}
	}
	return err
}

// emit hands what a deploy, rollback or job run did to cli.Emit: the result
// file, the zuul_return data, then print on stdout. It runs after a failed
// rollout or job too (the result then says what was applied), and the run's
// error, runErr, stays what the command returns.
func emit(cliContext *ucli.Context, res *result.DeployResult, runErr error, print func(io.Writer, *result.DeployResult) error) error {
	if res == nil {
		return runErr
	}
	zr := deploy.ZuulReturn(res)
	err := cli.Emit(cliContext, cli.Output{Result: res, Zuul: &zr, Print: func(w io.Writer) error { return print(w, res) }})
	return errors.Join(runErr, err)
}

// printSummary writes the one-line summary scripts read on stdout.
func printSummary(w io.Writer, res *result.DeployResult) error {
	_, err := fmt.Fprintf(w, "namespace=%s revision=%d changed=%t created=%d configured=%d unchanged=%d pruned=%d mode=%s\n",
		res.Namespace, res.Revision, res.Changed, res.Created, res.Configured, res.Unchanged, len(res.Pruned), res.Mode)
	return err
}
