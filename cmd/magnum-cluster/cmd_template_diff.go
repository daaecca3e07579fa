package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func templateDiffCommand() *ucli.Command {
	return &ucli.Command{Name: "diff", Usage: "show what template ensure would do",
		Flags: flags([]ucli.Flag{specFlag()}), Action: action(run(magnum.TemplateDiff, planOutput)),
		Description: "Example: magnum-cluster template diff --spec cluster.yaml"}
}
