package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
	"github.com/slipwayci/slipway/internal/version"
)

func testApp(action ucli.ActionFunc) (*ucli.App, *bytes.Buffer, *bytes.Buffer) {
	app := New(App{
		Name:    "demo",
		Usage:   "a demo",
		Example: "demo run --thing x",
		Commands: []*ucli.Command{{
			Name:   "run",
			Flags:  []ucli.Flag{&ucli.StringFlag{Name: "thing", EnvVars: []string{"SLIPWAY_THING"}}},
			Action: action,
		}},
	})
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	return app, &out, &errOut
}

func TestRunExitCodes(t *testing.T) {
	logging.Register("hunter2-password")
	tests := []struct {
		name     string
		args     []string
		err      error
		wantCode int
		wantErr  string
	}{
		{"ok", []string{"demo", "run"}, nil, ExitOK, ""},
		{"failure", []string{"demo", "run"}, fmt.Errorf("pushing x to region a: %w", errors.New("503")), ExitFailed, "demo: pushing x to region a: 503\n"},
		{"usage from action", []string{"demo", "run"}, Usagef("build.yaml:3: field tags: %q is not a valid tag", "a b"), ExitUsage, `demo: build.yaml:3: field tags: "a b" is not a valid tag` + "\n"},
		{"unknown flag", []string{"demo", "run", "--nope"}, nil, ExitUsage, "flag provided but not defined: -nope"},
		{"bad log format", []string{"demo", "--log-format", "xml", "run"}, nil, ExitUsage, `--log-format: "xml" is not text or json`},
		{"secret scrubbed", []string{"demo", "run"}, errors.New("auth with hunter2-password refused"), ExitFailed, "auth with [redacted] refused"},
		{"cancelled", []string{"demo", "run"}, fmt.Errorf("waiting: %w", context.Canceled), ExitFailed, "(interrupted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, _, errOut := testApp(func(*ucli.Context) error { return tt.err })
			code := Run(context.Background(), app, tt.args)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if tt.wantErr == "" && errOut.Len() != 0 {
				t.Errorf("stderr = %q, want nothing", errOut)
			}
			if !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tt.wantErr)
			}
			if strings.Count(strings.TrimSpace(errOut.String()), "\n") > 0 && tt.wantCode != ExitOK {
				t.Errorf("error printed on more than one line: %q", errOut)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	app, out, _ := testApp(nil)
	if code := Run(context.Background(), app, []string{"demo", "version"}); code != 0 {
		t.Fatalf("version exit %d", code)
	}
	if got := out.String(); got != "demo "+version.Version+"\n" {
		t.Errorf("version printed %q", got)
	}
	out.Reset()
	if code := Run(context.Background(), app, []string{"demo", "--help"}); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"EXAMPLES", "demo run --thing x", "--log-format", "SLIPWAY_LOG_FORMAT"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
}

func TestUserErrorFromLogic(t *testing.T) {
	// A logic package returns a usererr (or a config.Error) wrapped in its
	// own context; the one exit switch still sees exit 2.
	app := New(App{Name: "stage", Action: func(*ucli.Context) error {
		return fmt.Errorf("loading spec: %w", usererr.Errorf("spec.yaml:3: cluster.name: missing"))
	}})
	var errOut bytes.Buffer
	app.ErrWriter = &errOut
	if code := Run(context.Background(), app, []string{"stage"}); code != ExitUsage {
		t.Errorf("exit = %d, want %d", code, ExitUsage)
	}
	if got := errOut.String(); got != "stage: loading spec: spec.yaml:3: cluster.name: missing\n" {
		t.Errorf("stderr = %q", got)
	}
}

func TestZuulContext(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/vars.yaml"
	bad := dir + "/bad.yaml"
	if err := os.WriteFile(good, []byte("zuul: {pipeline: check, change: '5', patchset: '1'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("zuul: {change: five, patchset: '1'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		want     string
	}{
		{"file", []string{"--zuul-vars", good}, nil, ExitOK, "check/5"},
		{"env", nil, map[string]string{"ZUUL_PIPELINE": "gate", "ZUUL_CHANGE": "9", "ZUUL_PATCHSET": "2"}, ExitOK, "gate/9"},
		{"bad file", []string{"--zuul-vars", bad}, nil, ExitUsage, ""},
		{"missing file", []string{"--zuul-vars", dir + "/none.yaml"}, nil, ExitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, n := range zuulEnvNames() {
				t.Setenv(n, "")
			}
			for n, v := range tt.env {
				t.Setenv(n, v)
			}
			var got string
			app := New(App{Name: "demo", Commands: []*ucli.Command{{
				Name: "run", Flags: ZuulFlags(),
				Action: func(cliContext *ucli.Context) error {
					z, err := ZuulContext(cliContext)
					if err != nil {
						return err
					}
					got = z.Pipeline + "/" + z.Change
					return nil
				},
			}}})
			var errOut bytes.Buffer
			app.ErrWriter = &errOut
			code := Run(context.Background(), app, append([]string{"demo", "run"}, tt.args...))
			if code != tt.wantCode {
				t.Fatalf("exit = %d, want %d (stderr %q)", code, tt.wantCode, errOut.String())
			}
			if got != tt.want {
				t.Errorf("context = %q, want %q", got, tt.want)
			}
		})
	}
}

// zuulEnvNames lists the ZUUL_* variables of the test's environment, which
// each case clears so only its own reach ZuulContext.
func zuulEnvNames() []string {
	var names []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "ZUUL_") {
			names = append(names, name)
		}
	}
	return names
}

func TestStartArguments(t *testing.T) {
	tests := []struct {
		name      string
		argsUsage string
		wantCode  int
	}{
		{"flags only", "", ExitUsage},
		{"declared arguments", "[ID]", ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := New(App{Name: "demo", Commands: []*ucli.Command{{
				Name: "run", ArgsUsage: tt.argsUsage,
				Action: func(cliContext *ucli.Context) error {
					_, cancel, err := Start(cliContext)
					if err == nil {
						cancel()
					}
					return err
				},
			}}})
			var errOut bytes.Buffer
			app.ErrWriter = &errOut
			if code := Run(context.Background(), app, []string{"demo", "run", "x"}); code != tt.wantCode {
				t.Errorf("exit = %d, want %d (stderr %q)", code, tt.wantCode, errOut.String())
			}
		})
	}
}

func TestAction(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		bindErr  error
		wantCode int
		want     string
	}{
		{"bound and run", []string{"demo", "run", "--thing", "x"}, nil, ExitOK, "x"},
		{"bind fails", []string{"demo", "run"}, Usagef("no thing"), ExitUsage, ""},
		{"arguments refused before bind", []string{"demo", "run", "extra"}, nil, ExitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			bind := func(cliContext *ucli.Context) (string, error) { return cliContext.String("thing"), tt.bindErr }
			app, _, errOut := testApp(Action(bind, func(ctx context.Context, _ *ucli.Context, thing string) error {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				got = thing
				return nil
			}))
			if code := Run(context.Background(), app, tt.args); code != tt.wantCode {
				t.Errorf("exit = %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if got != tt.want {
				t.Errorf("run got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExamples(t *testing.T) {
	tests := []struct {
		name    string
		example string
		want    string
	}{
		{"one line", "demo run", "EXAMPLES:\n   demo run"},
		{"lines and a blank one", "# a\ndemo run \\\n  --x\n\ndemo b", "EXAMPLES:\n   # a\n   demo run \\\n     --x\n   \n   demo b"},
		{"trailing newline dropped", "demo run\n", "EXAMPLES:\n   demo run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Examples(tt.example); got != tt.want {
				t.Errorf("Examples(%q) = %q, want %q", tt.example, got, tt.want)
			}
		})
	}
}
