package cli

import (
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/zuul"
)

// ZuulFlags are the flags through which every stage learns its Zuul context
// and hands data back to Zuul. Add them to a command's Flags.
func ZuulFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.PathFlag{Name: "zuul-vars", Usage: "YAML/JSON `FILE` with a top-level zuul key (as the playbooks write it); without it ZUUL_* variables are read", EnvVars: []string{"SLIPWAY_ZUUL_VARS"}},
		&ucli.PathFlag{Name: "zuul-return", Usage: "write the data for Ansible's zuul_return (artifacts for later jobs) to this JSON `FILE`", EnvVars: []string{"SLIPWAY_ZUUL_RETURN"}},
	}
}

// ZuulContext returns the Zuul context from --zuul-vars, or from ZUUL_*
// environment variables when the flag is not set. A bad file is a usage error.
func ZuulContext(cliContext *ucli.Context) (*zuul.Context, error) {
	if path := cliContext.Path("zuul-vars"); path != "" {
		c, err := zuul.LoadFile(path)
		return c, AsUsage(err)
	}
	c, err := zuul.FromEnv(os.LookupEnv)
	return c, AsUsage(err)
}
