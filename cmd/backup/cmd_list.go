package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/cli"
)

func runList(ctx context.Context, cliContext *ucli.Context, o options) error {
	f := cliContext.String("format")
	if f != "json" && f != "text" {
		return cli.Usagef("--format %q is not json or text", f)
	}
	entries, err := backup.List(ctx, backup.ListOptions{Common: o.Common})
	if err != nil {
		return err
	}
	if f == "text" {
		return cli.Emit(cliContext, cli.Output{Print: func(w io.Writer) error { return printTable(w, entries) }})
	}
	if entries == nil {
		entries = []backup.Entry{}
	}
	return cli.Emit(cliContext, cli.Output{Print: cli.PrintJSON(entries)})
}

func printTable(w io.Writer, entries []backup.Entry) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCOMPLETE\tSITE\tDUMPS\tSIZE")
	for _, e := range entries {
		site, dumps := "-", "-"
		if e.Manifest != nil {
			site, dumps = e.Manifest.Site, fmt.Sprint(len(e.Manifest.Dumps))
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%d\n", e.ID, e.Complete, site, dumps, e.Size)
	}
	return tw.Flush()
}

func listCommand() *ucli.Command {
	return &ucli.Command{Name: "list", Usage: "list backups, newest first (JSON; --format text for a table)",
		UsageText: "backup list --s3-bucket B --s3-prefix acme/ [--format text]",
		Flags:     concat(s3Flags(), []ucli.Flag{&ucli.StringFlag{Name: "format", Value: "json", Usage: "json or text"}}),
		Action:    action(runList),
	}
}
