package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func templateDeleteCommand() *ucli.Command {
	return &ucli.Command{Name: "delete", Usage: "delete the spec's template version (--all-versions: every unused version)",
		Flags:       flags([]ucli.Flag{specFlag(), &ucli.BoolFlag{Name: "all-versions", Usage: "delete every version of template.name that no cluster uses"}}),
		Action:      action(run(magnum.TemplateDelete, jsonOutput)),
		Description: "Example: magnum-cluster template delete --spec cluster.yaml --all-versions"}
}
