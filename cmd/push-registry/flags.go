package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/push"
)

// regionFlags say where images go and how to log in there (every command).
func regionFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringSliceFlag{Name: "region", Usage: "target region `NAME=HOST[:PORT][/NAMESPACE]` (repeatable)", EnvVars: []string{"SLIPWAY_REGIONS"}},
		&ucli.StringFlag{Name: "targets", Usage: "YAML targets `FILE` (regions: [{name, registry or swift: {authurl, region, container, ...}, namespace, nodeRegistry, insecure, caFile, authFile}])", EnvVars: []string{"SLIPWAY_PUSH_TARGETS"}},
		&ucli.StringSliceFlag{Name: "insecure", Usage: "use plain http for region `NAME` (loopback registries always do)"},
		&ucli.StringFlag{Name: "auth-file", Usage: "docker config.json `FILE` with registry logins", EnvVars: []string{"REGISTRY_AUTH_FILE"}},
		&ucli.StringFlag{Name: "docker-config", Usage: "docker config `DIR` (its config.json is used when --auth-file is not given)", EnvVars: []string{"DOCKER_CONFIG"}},
		&ucli.StringFlag{Name: "secrets-file", Usage: "Zuul secret vars `FILE` with registry_credentials: {REGION|HOST: {username, password}} and swift_credentials: {REGION: {username, password, trustid}}", EnvVars: []string{"SLIPWAY_REGISTRY_SECRETS"}},
		&ucli.DurationFlag{Name: "request-timeout", Value: 30 * time.Second, Usage: "fail (and retry) a registry request with no answer for this long", EnvVars: []string{"SLIPWAY_PUSH_REQUEST_TIMEOUT"}},
		&ucli.StringFlag{Name: "registry-binary", Value: push.DefaultRegistryBinary, Usage: "distribution 2.8 `BINARY` run on the Swift storage of swift regions", EnvVars: []string{"SLIPWAY_REGISTRY_BINARY"}},
		&ucli.StringFlag{Name: "state-dir", Value: push.DefaultStateDir(), Usage: "`DIR` for the state of runs: the registries of swift regions and the open upload sessions (a rerun stops and cancels what a killed run left there)", EnvVars: []string{"SLIPWAY_PUSH_STATE_DIR"}},
	}
}

// bindConn reads how the regions are reached.
func bindConn(cliContext *ucli.Context) push.Conn {
	return push.Conn{
		RequestTimeout: cliContext.Duration("request-timeout"),
		RegistryBinary: cliContext.String("registry-binary"),
		StateDir:       cliContext.String("state-dir"),
	}
}

// bindRegions reads the regions of --targets and --region, and marks the
// --insecure ones.
func bindRegions(cliContext *ucli.Context) ([]push.Region, error) {
	var regions []push.Region
	if f := cliContext.String("targets"); f != "" {
		r, err := push.LoadTargets(f)
		if err != nil {
			return nil, err
		}
		regions = append(regions, r...)
	}
	for _, s := range cliContext.StringSlice("region") {
		r, err := push.ParseRegion(s)
		if err != nil {
			return nil, cli.Usagef("--region %w", err)
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

// bindAuth says where logins come from: --auth-file, else --docker-config's
// config.json, else ~/.docker/config.json when there is one.
func bindAuth(cliContext *ucli.Context) push.Auth {
	a := push.Auth{
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

// optionFlags are the flags that set the options push names in its errors.
var optionFlags = map[string]string{
	"source":       "--source",
	"repository":   "--repository",
	"tags":         "--tag",
	"fromRegistry": "--from-registry",
}

// flagHints say which flags resolve push's errors that name no option.
var flagHints = []struct {
	err  error
	hint string
}{
	{push.ErrNoRegions, "give --region NAME=HOST[:PORT][/NAMESPACE] (repeatable) or --targets FILE"},
	{push.ErrNoSource, "give --build-result FILE or --source IMAGE"},
	{push.ErrTwoSources, "give --build-result or --source, not both"},
}

// explain names in err the flags behind push's options.
func explain(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) && ce.File == "" {
		option, _, _ := strings.Cut(ce.Field, "[")
		if f, ok := optionFlags[option]; ok {
			ce.Field = f
		}
	}
	for _, h := range flagHints {
		if errors.Is(err, h.err) {
			return cli.Usagef("%w: %s", err, h.hint)
		}
	}
	return err
}
