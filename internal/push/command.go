package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/zuul"
)

const example = `# push build-image's images to both regions, tags moved only when both have them
push-registry push --build-result build.json \
  --region a=registry.a.example:5000/acme --region b=registry.b.example:5000/acme \
  --result push.json --zuul-return zuul_return.json

# one OCI layout, regions from a targets file, credentials from a Zuul secret
push-registry push --source oci:out/openedx --repository acme/openedx --tag v1 \
  --targets regions.yaml --secrets-file secrets.yaml

# gate→post: copy from the buildset registry by digest, then tag
push-registry promote --build-result build.json --from-registry buildset:5000 \
  --targets regions.yaml --tag latest

# check a push result against the live registries
push-registry verify --result push.json --targets regions.yaml`

// App is push-registry's command line; cmd/push-registry runs it.
func App() *ucli.App {
	return cli.New(cli.App{
		Name:    "push-registry",
		Usage:   "push images to the registries of every region, verified, tags moved only when all regions have them",
		Example: example,
		Commands: []*ucli.Command{
			pushCommand("push", "push images to every region (blobs and manifests by digest, verify, then tags)", false),
			pushCommand("promote", "copy images from an intermediate registry by digest to every region, then tag them", true),
			verifyCommand(),
		},
	})
}

func regionFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringSliceFlag{Name: "region", Usage: "target region `NAME=HOST[:PORT][/NAMESPACE]` (repeatable)", EnvVars: []string{"SLIPWAY_REGIONS"}},
		&ucli.StringFlag{Name: "targets", Usage: "YAML targets `FILE` (regions: [{name, registry, namespace, insecure, caFile, authFile}])", EnvVars: []string{"SLIPWAY_PUSH_TARGETS"}},
		&ucli.StringSliceFlag{Name: "insecure", Usage: "use plain http for region `NAME` (loopback registries always do)"},
		&ucli.StringFlag{Name: "auth-file", Usage: "docker config.json `FILE` with registry logins", EnvVars: []string{"REGISTRY_AUTH_FILE"}},
		&ucli.StringFlag{Name: "docker-config", Usage: "docker config `DIR` (its config.json is used when --auth-file is not given)", EnvVars: []string{"DOCKER_CONFIG"}},
		&ucli.StringFlag{Name: "secrets-file", Usage: "Zuul secret vars `FILE` with registry_credentials: {REGION|HOST: {username, password}}", EnvVars: []string{"SLIPWAY_REGISTRY_SECRETS"}},
	}
}

func pushCommand(name, usage string, promote bool) *ucli.Command {
	flags := []ucli.Flag{
		&ucli.StringFlag{Name: "build-result", Usage: "build-image result `FILE`: push every image in it", EnvVars: []string{"SLIPWAY_BUILD_RESULT"}},
		&ucli.StringFlag{Name: "source", Usage: "one image `SRC`: oci:DIR[:REF|@DIGEST], docker-archive:FILE[:TAG], or [docker://]HOST/REPO:TAG|@DIGEST"},
		&ucli.StringFlag{Name: "repository", Usage: "destination `REPO` for --source, below each region's namespace"},
		&ucli.StringSliceFlag{Name: "tag", Usage: "tag `TAG` to move in every region (repeatable)", EnvVars: []string{"SLIPWAY_PUSH_TAGS"}},
		&ucli.IntFlag{Name: "jobs", Value: 4, Usage: "blobs copied at once", EnvVars: []string{"SLIPWAY_PUSH_JOBS"}},
		&ucli.DurationFlag{Name: "stall-timeout", Value: 60 * time.Second, Usage: "abort and retry an upload with no progress for this long", EnvVars: []string{"SLIPWAY_PUSH_STALL_TIMEOUT"}},
		&ucli.DurationFlag{Name: "response-timeout", Value: 5 * time.Minute, Usage: "abort and retry an upload whose registry has not answered this long after the last byte", EnvVars: []string{"SLIPWAY_PUSH_RESPONSE_TIMEOUT"}},
		&ucli.IntFlag{Name: "attempts", Value: 4, Usage: "tries per blob and region", EnvVars: []string{"SLIPWAY_PUSH_ATTEMPTS"}},
		&ucli.BoolFlag{Name: "no-verify", Usage: "do not read everything back before moving tags"},
		&ucli.DurationFlag{Name: "timeout", Usage: "give up after this long (0: no limit)", EnvVars: []string{"SLIPWAY_TIMEOUT"}},
		&ucli.StringFlag{Name: "result", Usage: "write the push result (JSON) to `FILE`", EnvVars: []string{"SLIPWAY_PUSH_RESULT"}},
		&ucli.StringFlag{Name: "zuul-return", Usage: "write zuul_return artifacts data to `FILE`", EnvVars: []string{"SLIPWAY_ZUUL_RETURN"}},
		&ucli.StringFlag{Name: "zuul-vars", Usage: "Zuul vars `FILE` (zuul: {...}); default: ZUUL_* environment", EnvVars: []string{"SLIPWAY_ZUUL_VARS"}},
	}
	if promote {
		flags = append(flags, &ucli.StringFlag{Name: "from-registry", Usage: "intermediate registry `HOST[:PORT][/NS]` to read --build-result images from by digest", EnvVars: []string{"SLIPWAY_BUILDSET_REGISTRY"}})
	}
	return &ucli.Command{
		Name:      name,
		Usage:     usage,
		UsageText: "push-registry " + name + " [options]\n\n" + example,
		Flags:     append(flags, regionFlags()...),
		Action: func(cliContext *ucli.Context) error {
			if cliContext.NArg() > 0 {
				return cli.Usagef("%s takes no arguments, got %q", name, cliContext.Args().First())
			}
			regions, err := regionsFromFlags(cliContext)
			if err != nil {
				return err
			}
			opts := Options{
				BuildResult:     cliContext.String("build-result"),
				Source:          cliContext.String("source"),
				Repository:      cliContext.String("repository"),
				Tags:            cliContext.StringSlice("tag"),
				RequireDigest:   promote,
				Regions:         regions,
				Auth:            authFromFlags(cliContext),
				Jobs:            cliContext.Int("jobs"),
				StallTimeout:    cliContext.Duration("stall-timeout"),
				ResponseTimeout: cliContext.Duration("response-timeout"),
				Attempts:        cliContext.Int("attempts"),
				NoVerify:        cliContext.Bool("no-verify"),
				ResultFile:      cliContext.String("result"),
				ZuulReturnFile:  cliContext.String("zuul-return"),
				Log:             slog.Default(),
				Progress:        progress.New(cliContext.App.ErrWriter),
			}
			if promote {
				opts.FromRegistry = cliContext.String("from-registry")
				if opts.Source == "" && opts.FromRegistry == "" {
					return cli.Usagef("promote needs --source HOST/REPO@sha256:... or --build-result with --from-registry")
				}
			}
			zc, err := zuulContext(cliContext.String("zuul-vars"))
			if err != nil {
				return err
			}
			opts.Zuul = zc
			ctx := cliContext.Context
			if d := cliContext.Duration("timeout"); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			res, err := Run(ctx, opts)
			if err != nil {
				return asCLI(err)
			}
			for _, img := range res.Images {
				for _, r := range img.Regions {
					fmt.Fprintf(cliContext.App.Writer, "%s@%s\n", r.Repository, r.Digest)
				}
			}
			return nil
		},
	}
}

func verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "verify",
		Usage:     "check a push result against the live registries (manifests, blob sizes, tags)",
		UsageText: "push-registry verify --result push.json [--targets regions.yaml]",
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "result", Usage: "push result `FILE` to check", EnvVars: []string{"SLIPWAY_PUSH_RESULT"}},
		}, regionFlags()...),
		Action: func(cliContext *ucli.Context) error {
			var regions []Region
			if cliContext.IsSet("region") || cliContext.IsSet("targets") {
				r, err := regionsFromFlags(cliContext)
				if err != nil {
					return err
				}
				regions = r
			}
			err := Verify(cliContext.Context, VerifyOptions{
				ResultFile: cliContext.String("result"),
				Regions:    regions,
				Auth:       authFromFlags(cliContext),
				Log:        slog.Default(),
			})
			if err != nil {
				return asCLI(err)
			}
			fmt.Fprintln(cliContext.App.Writer, "verified")
			return nil
		},
	}
}

func regionsFromFlags(cliContext *ucli.Context) ([]Region, error) {
	var regions []Region
	if f := cliContext.String("targets"); f != "" {
		r, err := LoadTargets(f)
		if err != nil {
			return nil, asCLI(err)
		}
		regions = append(regions, r...)
	}
	for _, s := range cliContext.StringSlice("region") {
		r, err := ParseRegion(s)
		if err != nil {
			return nil, asCLI(err)
		}
		regions = append(regions, r)
	}
	for _, n := range cliContext.StringSlice("insecure") {
		found := false
		for i := range regions {
			if regions[i].Name == n {
				regions[i].Insecure, found = true, true
			}
		}
		if !found {
			return nil, cli.Usagef("--insecure %q: no such region", n)
		}
	}
	return regions, nil
}

func authFromFlags(cliContext *ucli.Context) Auth {
	a := Auth{
		AuthFile:    cliContext.String("auth-file"),
		SecretsFile: cliContext.String("secrets-file"),
		Env:         os.LookupEnv,
	}
	if a.AuthFile == "" {
		if dir := cliContext.String("docker-config"); dir != "" {
			a.AuthFile = filepath.Join(dir, "config.json")
		} else if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".docker", "config.json"); fileExists(p) {
				a.AuthFile = p
			}
		}
	}
	return a
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func zuulContext(varsFile string) (*result.ZuulRef, error) {
	var zc *zuul.Context
	var err error
	if varsFile != "" {
		zc, err = zuul.LoadFile(varsFile)
	} else {
		zc, err = zuul.FromEnv(os.LookupEnv)
	}
	if err != nil {
		return nil, cli.AsUsage(err)
	}
	return zc.ResultRef(), nil
}

// asCLI marks bad-input errors for exit code 2.
func asCLI(err error) error {
	if errors.Is(err, ErrBadInput) {
		return cli.AsUsage(err)
	}
	return err
}
