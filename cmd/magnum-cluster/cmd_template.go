package main

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/magnum"
)

// templateCommand is `template ensure|diff|delete`: the cluster template of
// a spec (of each of its regions).
func templateCommand() *ucli.Command {
	spec := []ucli.Flag{specFlag()}
	created := func(t *magnum.Template) bool { return t.Created }
	deleted := func(d *magnum.TemplatesDeleted) bool { return len(d.Deleted) > 0 }
	return &ucli.Command{Name: "template", Usage: "the cluster template of a spec", Subcommands: []*ucli.Command{
		{Name: "ensure", Usage: "create the spec's template version if missing; print it as JSON",
			Flags: flags(spec), Action: cli.Action(bind, perSpec(run(magnum.TemplateEnsure, jsonOutput), inRegions(magnum.TemplateEnsure, created, jsonOutput))),
			Description: "A template's Magnum name is the spec's template.name plus a hash of the rest: a changed spec makes a new template, because Magnum templates in use cannot change.\n\nExample: magnum-cluster template ensure --spec cluster.yaml"},
		{Name: "diff", Usage: "show what template ensure would do",
			Flags: flags(spec), Action: cli.Action(bind, perSpec(run(magnum.TemplateDiff, planOutput), inRegions(magnum.TemplateDiff, nil, regionPlanOutput))),
			Description: "Example: magnum-cluster template diff --spec cluster.yaml"},
		{Name: "delete", Usage: "delete the spec's template version (--all-versions: every unused version)",
			Flags:       flags(spec, []ucli.Flag{&ucli.BoolFlag{Name: "all-versions", Usage: "delete every version of template.name that no cluster uses"}}),
			Action:      cli.Action(bind, perSpec(run(magnum.TemplateDelete, jsonOutput), inRegions(magnum.TemplateDelete, deleted, jsonOutput))),
			Description: "Example: magnum-cluster template delete --spec cluster.yaml --all-versions"},
	}}
}
