package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/push"
)

func verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "verify",
		Usage: "check a push result against the live registries (manifests, blob sizes or --deep contents, tags)",
		UsageText: "push-registry verify --result push.json [--targets regions.yaml] [--deep [--repair]]\n" +
			"push-registry verify --deployed status.json --deployed-region b --targets regions.yaml --deep   (a site's deployed images: deploy-k8s status, whole in its region)",
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "result", Usage: "push result `FILE` to check", EnvVars: []string{"SLIPWAY_PUSH_RESULT"}},
			&ucli.StringFlag{Name: "deployed", Usage: "instead of --result: a deploy-k8s status or deploy result `FILE`, whose images (as the nodes pull them) are checked in --deployed-region"},
			&ucli.StringFlag{Name: "deployed-region", Usage: "the region `NAME` (of --targets or --region) whose registry --deployed's images must be in"},
			&ucli.BoolFlag{Name: "deep", Usage: "read every blob back in full (size and sha256), not only its size"},
			&ucli.BoolFlag{Name: "repair", Usage: "with --deep: repair damaged blobs of swift regions (delete their Swift objects, copy again from a region that has them whole)"},
			&ucli.IntFlag{Name: "jobs", Value: 4, Usage: "blobs read at once per image and region", EnvVars: []string{"SLIPWAY_PUSH_JOBS"}},
			cli.TimeoutFlag(0),
		}, regionFlags()...),
		Action: cli.Action(bindVerify, runVerify),
	}
}

// bindVerify reads the flags of verify; --region and --targets are optional
// there (they give TLS and login settings by region name).
func bindVerify(cliContext *ucli.Context) (push.VerifyOptions, error) {
	o := push.VerifyOptions{
		ResultFile:     cliContext.String("result"),
		DeployedFile:   cliContext.String("deployed"),
		DeployedRegion: cliContext.String("deployed-region"),
		Auth:           bindAuth(cliContext),
		Deep:           cliContext.Bool("deep"),
		Repair:         cliContext.Bool("repair"),
		Jobs:           cliContext.Int("jobs"),
		Conn:           bindConn(cliContext),
		Log:            slog.Default(),
	}
	switch {
	case o.ResultFile == "" && o.DeployedFile == "":
		return o, cli.Usagef("--result is required: the push result FILE to check (or --deployed: a site's deployed images)")
	case o.ResultFile != "" && o.DeployedFile != "":
		return o, cli.Usagef("--result and --deployed: give one of them")
	case o.DeployedFile != "" && o.DeployedRegion == "":
		return o, cli.Usagef("--deployed needs --deployed-region: the region whose registry the images must be in")
	}
	if o.Repair && !o.Deep {
		return o, cli.Usagef("--repair needs --deep (damage is found by reading every blob back)")
	}
	if cliContext.IsSet("region") || cliContext.IsSet("targets") {
		r, err := bindRegions(cliContext)
		if err != nil {
			return o, err
		}
		o.Regions = r
	}
	return o, nil
}

func runVerify(ctx context.Context, cliContext *ucli.Context, o push.VerifyOptions) error {
	if err := push.Verify(ctx, o); err != nil {
		return explain(err)
	}
	return cli.Emit(cliContext, cli.Output{Print: func(w io.Writer) error {
		_, err := fmt.Fprintln(w, "verified")
		return err
	}})
}
