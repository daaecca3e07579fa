package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/version"
	"github.com/slipwayci/slipway/internal/zuul"
)

// TimeoutFlag is the one meaning of --timeout in every binary: the whole
// command gives up after this long (0: no limit). def is the stage's default.
func TimeoutFlag(def time.Duration) ucli.Flag {
	return &ucli.DurationFlag{Name: "timeout", Value: def, Usage: "give up the whole command after this long (0: no limit)", EnvVars: []string{"SLIPWAY_TIMEOUT"}}
}

// ResultFlag is --result: where the command writes its result file.
// env is the stage's own variable (e.g. SLIPWAY_PUSH_RESULT).
func ResultFlag(what, env string) ucli.Flag {
	return &ucli.PathFlag{Name: "result", Usage: "write the " + what + " result (JSON) to `FILE`", EnvVars: []string{env}}
}

// Start is the prelude of every command: it rejects positional arguments
// (commands take flags only, unless they declare ArgsUsage and check their
// arguments themselves) and applies --timeout, when the command has one, to
// the whole command. Call the returned cancel when the command ends.
func Start(cliContext *ucli.Context) (context.Context, context.CancelFunc, error) {
	if cliContext.NArg() > 0 && cliContext.Command.ArgsUsage == "" {
		return nil, nil, Usagef("%s takes no arguments, got %q", cliContext.Command.Name, cliContext.Args().First())
	}
	if d := cliContext.Duration("timeout"); d > 0 {
		ctx, cancel := context.WithTimeout(cliContext.Context, d)
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithCancel(cliContext.Context)
	return ctx, cancel, nil
}

// Action is the action of a command whose flags bind into options O: Start,
// then bind, then run under the command's context. Stages whose commands
// share one bind write each command as Action(bind, runX).
func Action[O any](bind func(*ucli.Context) (O, error), run func(ctx context.Context, cliContext *ucli.Context, o O) error) ucli.ActionFunc {
	return func(cliContext *ucli.Context) error {
		ctx, cancel, err := Start(cliContext)
		if err != nil {
			return err
		}
		defer cancel()
		o, err := bind(cliContext)
		if err != nil {
			return err
		}
		return run(ctx, cliContext, o)
	}
}

// Output is what a command hands back to the world.
type Output struct {
	// Result is written to --result (when the command has the flag and it is
	// set), stamped with the binary's name and version.
	Result result.Document
	// Zuul is written to --zuul-return when that flag is set.
	Zuul *zuul.Return
	// Print writes what stdout shows (machine-readable: references, digests).
	// Nil prints Result as indented JSON (see PrintJSON).
	Print func(w io.Writer) error
}

// Emit writes a command's output the same way in every stage: the result
// file first, then the zuul_return data, then stdout, so that a file a later
// job reads is complete before anything claims success.
func Emit(cliContext *ucli.Context, out Output) error {
	if out.Result != nil {
		h := out.Result.ResultHeader()
		if h.Tool == "" {
			h.Tool = cliContext.App.Name + " " + version.Version
		}
		if p := cliContext.Path("result"); p != "" {
			if err := result.WriteFile(p, out.Result, 0o644); err != nil {
				return fmt.Errorf("writing the result: %w", err)
			}
		} else {
			h.APIVersion, h.Kind = result.APIVersion, out.Result.ResultKind()
			if h.Generated.IsZero() {
				h.Generated = time.Now().UTC().Truncate(time.Second)
			}
		}
	}
	if p := cliContext.Path("zuul-return"); p != "" && out.Zuul != nil {
		if err := out.Zuul.WriteFile(p); err != nil {
			return fmt.Errorf("writing zuul_return data: %w", err)
		}
	}
	w := cliContext.App.Writer
	if out.Print != nil {
		return out.Print(w)
	}
	if out.Result == nil {
		return nil
	}
	return PrintJSON(out.Result)(w)
}

// PrintJSON is an Output.Print that writes v as indented JSON, the way
// every command prints a machine-readable answer that is not a result file.
func PrintJSON(v any) func(w io.Writer) error {
	return func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
}
