// Package cli holds the command-line conventions every slipway binary follows:
// global flags, logging set-up, the version command and the mapping of errors
// to exit codes (0 done, 1 failed, 2 bad usage or configuration).
package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
	"github.com/slipwayci/slipway/internal/version"
)

// Exit codes shared by every binary.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitUsage   = 2
	exitUnknown = ExitFailed
)

// Usagef returns a user error (exit 2) with a formatted message; %w wraps as
// usual. It is usererr.Errorf, kept here for command code.
func Usagef(format string, args ...any) error { return usererr.Errorf(format, args...) }

// AsUsage marks err as a user error unless it is nil or already one.
func AsUsage(err error) error { return usererr.Wrap(err) }

// IsUsage reports whether err is (or wraps) a user error.
func IsUsage(err error) bool { return usererr.Is(err) }

// ExitCode maps an error to the documented exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case IsUsage(err):
		return ExitUsage
	default:
		var ec ucli.ExitCoder
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return exitUnknown
	}
}

// App describes one binary.
type App struct {
	Name     string
	Usage    string
	Example  string // shown in --help under EXAMPLES
	Commands []*ucli.Command
	Flags    []ucli.Flag     // extra global flags
	Action   ucli.ActionFunc // for binaries without subcommands
}

// GlobalFlags are the flags every binary accepts.
func GlobalFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json", EnvVars: []string{"SLIPWAY_LOG_FORMAT"}},
		&ucli.BoolFlag{Name: "debug", Usage: "verbose logs and full error details", EnvVars: []string{"SLIPWAY_DEBUG"}},
	}
}

// New builds the urfave/cli App with the shared flags, the version command and
// a Before hook that configures the logger.
func New(a App) *ucli.App {
	app := &ucli.App{
		Name:                   a.Name,
		Usage:                  a.Usage,
		Version:                version.Version,
		Commands:               append(a.Commands, versionCommand(a.Name)),
		Flags:                  append(GlobalFlags(), a.Flags...),
		Action:                 a.Action,
		UseShortOptionHandling: true,
		HideVersion:            true,
		Writer:                 os.Stdout,
		ErrWriter:              os.Stderr,
		// Errors are printed once, by Run; urfave must not exit on its own.
		ExitErrHandler: func(*ucli.Context, error) {},
		OnUsageError:   usageError,
		Before: func(cliContext *ucli.Context) error {
			format := cliContext.String("log-format")
			if format != "text" && format != "json" {
				return Usagef("--log-format: %q is not text or json", format)
			}
			logger := logging.New(cliContext.App.ErrWriter, format, cliContext.Bool("debug"))
			slog.SetDefault(logger)
			return nil
		},
	}
	if a.Example != "" {
		app.Description = Examples(a.Example)
	}
	for _, c := range app.Commands {
		setUsageErrors(c)
	}
	return app
}

// usageError marks urfave's flag and argument errors as user errors (exit 2).
func usageError(_ *ucli.Context, err error, _ bool) error { return usererr.Wrap(err) }

func setUsageErrors(c *ucli.Command) {
	if c.OnUsageError == nil {
		c.OnUsageError = usageError
	}
	for _, sub := range c.Subcommands {
		setUsageErrors(sub)
	}
}

// Examples is the --help description of a binary or command that shows
// example command lines: an EXAMPLES heading over the lines, indented.
func Examples(example string) string { return "EXAMPLES:\n" + indent(example) }

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "   " + l
	}
	return strings.Join(lines, "\n")
}

func versionCommand(name string) *ucli.Command {
	return &ucli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(cliContext *ucli.Context) error {
			_, err := fmt.Fprintf(cliContext.App.Writer, "%s %s\n", name, version.Version)
			return err
		},
	}
}

// Run executes app with args under a context cancelled by SIGINT/SIGTERM,
// prints a failing error as one line on stderr, and returns the exit code.
func Run(ctx context.Context, app *ucli.App, args []string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.RunContext(ctx, args)
	if err == nil {
		return ExitOK
	}
	printError(app.ErrWriter, app.Name, err, hasFlag(args, "--debug"))
	return ExitCode(err)
}

// RunCaptured runs app with args as Run does, capturing what it writes to
// stdout and stderr: how tests run a whole command line.
func RunCaptured(ctx context.Context, app *ucli.App, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	code = Run(ctx, app, args)
	return code, out.String(), errOut.String()
}

// Main is the whole body of a binary's main function.
func Main(app *ucli.App) {
	os.Exit(Run(context.Background(), app, os.Args))
}

func hasFlag(args []string, flag string) bool {
	if v := os.Getenv("SLIPWAY_DEBUG"); v == "1" || v == "true" {
		return true
	}
	for _, a := range args {
		if a == flag || a == flag+"=true" {
			return true
		}
	}
	return false
}

func printError(w io.Writer, name string, err error, debug bool) {
	msg := logging.Scrub(strings.ReplaceAll(err.Error(), "\n", "; "))
	if errors.Is(err, context.Canceled) {
		msg += " (interrupted)"
	}
	fmt.Fprintf(w, "%s: %s\n", name, msg)
	if debug {
		fmt.Fprintf(w, "%s: details: %s\n", name, logging.Scrub(fmt.Sprintf("%#v", err)))
	}
}
