package main

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/deploy"
)

func namespaceCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "namespace",
		Usage:     "print the namespace a branch deploys into",
		UsageText: "deploy-k8s namespace --branch platform/acme",
		Flags:     branchFlags(),
		Action:    runNamespace,
	}
}

func runNamespace(cliContext *ucli.Context) error {
	_, cancel, err := cli.Start(cliContext)
	if err != nil {
		return err
	}
	defer cancel()
	ns, err := deploy.NamespaceFor(cliContext.String("branch"), cliContext.String("branch-prefix"), cliContext.String("namespace-prefix"))
	if err != nil {
		return withFlag(err)
	}
	_, err = fmt.Fprintln(cliContext.App.Writer, ns)
	return err
}
