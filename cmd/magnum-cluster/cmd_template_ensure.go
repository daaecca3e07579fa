package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/magnum"
)

func templateEnsureCommand() *ucli.Command {
	return &ucli.Command{Name: "ensure", Usage: "create the spec's template version if missing; print it as JSON",
		Flags: flags([]ucli.Flag{specFlag()}), Action: action(run(magnum.TemplateEnsure, jsonOutput)),
		Description: "A template's Magnum name is the spec's template.name plus a hash of the rest: a changed spec makes a new template, because Magnum templates in use cannot change.\n\nExample: magnum-cluster template ensure --spec cluster.yaml"}
}
