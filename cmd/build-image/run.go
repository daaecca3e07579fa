package main

import (
	"context"
	"errors"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/buildimage"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/config"
)

// build builds the images of o; the result goes to --result (default
// OUTPUT/build-result.json), --zuul-return and stdout.
func build(ctx context.Context, cliContext *ucli.Context, o buildimage.Options) error {
	resultFile := cliContext.Path("result")
	if resultFile == "" {
		resultFile = filepath.Join(o.OutputDir, "build-result.json")
		if err := cliContext.Set("result", resultFile); err != nil {
			return err
		}
	}
	o.PreviousResult = resultFile
	res, err := buildimage.Run(ctx, o)
	if err != nil {
		return withFlags(err)
	}
	z := buildimage.ZuulReturn(res, resultFile)
	return cli.Emit(cliContext, cli.Output{Result: res, Zuul: &z})
}

// withFlags names the flag behind an error about an option or the image
// given by flags (a config.Error without a file), and the flag that fixes
// a build step's plain-HTTP registry.
func withFlags(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) && ce.File == "" {
		ce.Field = flagOf(ce.Field)
	}
	var se *buildimage.StepError
	if errors.As(err, &se) && se.PlainHTTP != "" {
		se.Hint = "the registry " + se.PlainHTTP + " speaks plain HTTP: pass --insecure-registry " + se.PlainHTTP
	}
	return err
}

// withLockFlags names the flag behind an error about a lock-debian option.
func withLockFlags(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) && ce.File == "" {
		switch ce.Field {
		case "lock", "keyring", "source":
			ce.Field = "--" + ce.Field
		case "packages":
			ce.Field = "--package"
		case "sources":
			ce.Field = "--source"
		}
	}
	return err
}
