package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/push"
	"github.com/slipwayci/slipway/internal/result"
)

// pushCommand is push, or promote: a push whose sources are pinned by digest.
func pushCommand(name, usage string, promote bool) *ucli.Command {
	flags := []ucli.Flag{
		&ucli.StringFlag{Name: "build-result", Usage: "build-image result `FILE`: push every image in it", EnvVars: []string{"SLIPWAY_BUILD_RESULT"}},
		&ucli.StringFlag{Name: "source", Usage: "one image `SRC`: oci:DIR[:REF|@DIGEST], docker-archive:FILE[:TAG], or [docker://]HOST/REPO:TAG|@DIGEST"},
		&ucli.StringFlag{Name: "repository", Usage: "destination `REPO` for --source, below each region's namespace"},
		&ucli.StringSliceFlag{Name: "tag", Usage: "tag `TAG` to move in every region (repeatable)", EnvVars: []string{"SLIPWAY_PUSH_TAGS"}},
		&ucli.IntFlag{Name: "jobs", Value: 4, Usage: "blobs copied at once", EnvVars: []string{"SLIPWAY_PUSH_JOBS"}},
		&ucli.DurationFlag{Name: "stall-timeout", Value: 60 * time.Second, Usage: "abort and retry an upload with no progress for this long", EnvVars: []string{"SLIPWAY_PUSH_STALL_TIMEOUT"}},
		&ucli.DurationFlag{Name: "response-timeout", Value: 5 * time.Minute, Usage: "abort and retry an upload whose registry has not answered this long after the last byte", EnvVars: []string{"SLIPWAY_PUSH_RESPONSE_TIMEOUT"}},
		&ucli.IntFlag{Name: "attempts", Value: 4, Usage: "tries per request, and per blob and region", EnvVars: []string{"SLIPWAY_PUSH_ATTEMPTS"}},
		&ucli.BoolFlag{Name: "no-verify", Usage: "do not read back blobs a region already had, nor everything before moving tags"},
		cli.TimeoutFlag(0),
		cli.ResultFlag("push", "SLIPWAY_PUSH_RESULT"),
	}
	flags = append(flags, cli.ZuulFlags()...)
	if promote {
		flags = append(flags, &ucli.StringFlag{Name: "from-registry", Usage: "intermediate registry `HOST[:PORT][/NS]` to read --build-result images from by digest", EnvVars: []string{"SLIPWAY_BUILDSET_REGISTRY"}})
	}
	return &ucli.Command{
		Name:      name,
		Usage:     usage,
		UsageText: "push-registry " + name + " [options]\n\n" + example,
		Flags:     append(flags, regionFlags()...),
		Action: cli.Action(func(cliContext *ucli.Context) (push.Options, error) {
			return bindPush(cliContext, promote)
		}, runPush),
	}
}

// bindPush reads the flags of push (or promote) into push's options.
func bindPush(cliContext *ucli.Context, promote bool) (push.Options, error) {
	regions, err := bindRegions(cliContext)
	if err != nil {
		return push.Options{}, err
	}
	opts := push.Options{
		BuildResult:     cliContext.String("build-result"),
		Source:          cliContext.String("source"),
		Repository:      cliContext.String("repository"),
		Tags:            cliContext.StringSlice("tag"),
		RequireDigest:   promote,
		Regions:         regions,
		Auth:            bindAuth(cliContext),
		Jobs:            cliContext.Int("jobs"),
		StallTimeout:    cliContext.Duration("stall-timeout"),
		ResponseTimeout: cliContext.Duration("response-timeout"),
		Attempts:        cliContext.Int("attempts"),
		NoVerify:        cliContext.Bool("no-verify"),
		Conn:            bindConn(cliContext),
		Log:             slog.Default(),
		Progress:        progress.New(cliContext.App.ErrWriter),
	}
	if promote {
		opts.FromRegistry = cliContext.String("from-registry")
		if opts.Source == "" && opts.FromRegistry == "" {
			return push.Options{}, cli.Usagef("promote needs --source HOST/REPO@sha256:... or --build-result with --from-registry")
		}
	}
	zc, err := cli.ZuulContext(cliContext)
	if err != nil {
		return push.Options{}, err
	}
	opts.Zuul = zc.ResultRef()
	return opts, nil
}

// runPush pushes, then writes the result, the zuul_return data and, on
// stdout, one REPOSITORY@DIGEST line per image and region: the reference
// the region's nodes pull (see references).
func runPush(ctx context.Context, cliContext *ucli.Context, opts push.Options) error {
	res, err := push.Run(ctx, opts)
	if err != nil {
		return explain(err)
	}
	z := push.ZuulReturn(res)
	return cli.Emit(cliContext, cli.Output{Result: res, Zuul: &z, Print: references(res)})
}

// references prints each image's node reference per region: the CI
// address of a storage-backed region was push-registry's own registry,
// gone when the command ends.
func references(res *result.PushResult) func(io.Writer) error {
	return func(w io.Writer) error {
		for _, img := range res.Images {
			for _, r := range img.Regions {
				ref, err := img.NodeReference(r.Region)
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintln(w, ref); err != nil {
					return err
				}
			}
		}
		return nil
	}
}
