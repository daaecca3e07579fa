package buildimage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/version"
	"github.com/slipwayci/slipway/internal/zuul"
)

// Example is the --help example of build-image.
const Example = `# every image of a build file, tags from the Zuul vars of the job
build-image --file images/build.yaml --output out/images --zuul-vars zuul-vars.yaml \
  --insecure-registry 127.0.0.1:5000 --build-arg BASE_IMAGE=127.0.0.1:5000/base/busybox:1.35

# one Dockerfile image from flags, reproducible
SOURCE_DATE_EPOCH=1700000000 build-image --context . --repository acme/openedx --tag latest --output out/images

# one native image: a directory added to a base, no Dockerfile
build-image --native --base 127.0.0.1:5000/base/busybox:1.35 --add site:/srv/site \
  --entrypoint /bin/httpd --repository acme/static --output out/images`

// Flags are build-image's flags; every one has an environment twin.
func Flags() []ucli.Flag {
	env := func(n string) []string { return []string{"SLIPWAY_BUILD_" + n} }
	return []ucli.Flag{
		&ucli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "build file (YAML) listing the images", EnvVars: env("FILE")},
		&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "out/images", Usage: "directory for one OCI layout per image", EnvVars: env("OUTPUT")},
		&ucli.StringFlag{Name: "result", Usage: "build result file (default OUTPUT/build-result.json)", EnvVars: env("RESULT")},
		&ucli.StringFlag{Name: "zuul-return", Usage: "also write zuul_return data (artifacts, slipway_build vars) to this file", EnvVars: []string{"SLIPWAY_ZUUL_RETURN"}},
		&ucli.StringFlag{Name: "zuul-vars", Usage: "file with the job's `zuul` variables (default: ZUUL_* environment variables)", EnvVars: []string{"SLIPWAY_ZUUL_VARS"}},
		&ucli.StringFlag{Name: "backend", Value: BackendBuildah, Usage: "backend for Dockerfile images: buildah or docker (needs a daemon)", EnvVars: env("BACKEND")},
		&ucli.StringSliceFlag{Name: "build-arg", Usage: "KEY=VALUE build arg for every image, over the build file's", EnvVars: env("ARGS")},
		&ucli.StringSliceFlag{Name: "insecure-registry", Usage: "HOST:PORT of a plain-HTTP registry for base images", EnvVars: []string{"SLIPWAY_INSECURE_REGISTRIES"}},
		&ucli.StringFlag{Name: "source-date-epoch", Usage: "seconds since 1970: image and file times, for reproducible digests", EnvVars: []string{"SOURCE_DATE_EPOCH"}},
		&ucli.StringFlag{Name: "work-dir", Usage: "directory for temporary build state (default: system temp dir)", EnvVars: env("WORK_DIR")},
		&ucli.StringFlag{Name: "buildah", Value: "buildah", Usage: "buildah binary", EnvVars: []string{"SLIPWAY_BUILDAH"}},
		&ucli.StringFlag{Name: "storage-root", Usage: "buildah --root to keep between runs (default: fresh per run)", EnvVars: []string{"SLIPWAY_BUILDAH_ROOT"}},
		&ucli.StringFlag{Name: "storage-runroot", Usage: "buildah --runroot, with --storage-root", EnvVars: []string{"SLIPWAY_BUILDAH_RUNROOT"}},
		&ucli.StringFlag{Name: "storage-driver", Value: "overlay", Usage: "buildah storage driver: overlay or vfs", EnvVars: []string{"SLIPWAY_BUILDAH_STORAGE_DRIVER"}},
		&ucli.StringFlag{Name: "isolation", Value: "chroot", Usage: "buildah RUN isolation: chroot or oci", EnvVars: []string{"SLIPWAY_BUILDAH_ISOLATION"}},
		&ucli.StringFlag{Name: "docker", Value: "docker", Usage: "docker CLI for --backend docker", EnvVars: []string{"SLIPWAY_DOCKER"}},
		// One image from flags.
		&ucli.StringFlag{Name: "name", Usage: "single image: name (default: last part of --repository)", EnvVars: env("NAME")},
		&ucli.StringFlag{Name: "context", Usage: "single image: build context directory", EnvVars: env("CONTEXT")},
		&ucli.StringFlag{Name: "dockerfile", Usage: "single image: Dockerfile, relative to the context", EnvVars: env("DOCKERFILE")},
		&ucli.StringFlag{Name: "target", Usage: "single image: Dockerfile stage to build", EnvVars: env("TARGET")},
		&ucli.StringFlag{Name: "repository", Usage: "single image: repository without registry (acme/openedx)", EnvVars: env("REPOSITORY")},
		&ucli.StringSliceFlag{Name: "tag", Usage: "single image: tag template for post/manual builds ({branch}, {short_sha}...)", EnvVars: env("TAGS")},
		&ucli.StringSliceFlag{Name: "label", Usage: "single image: KEY=VALUE label", EnvVars: env("LABELS")},
		&ucli.StringSliceFlag{Name: "secret", Usage: "single image: build secret ID=env:VAR or ID=file:PATH, for RUN --mount=type=secret,id=ID", EnvVars: env("SECRETS")},
		&ucli.BoolFlag{Name: "native", Usage: "single image: build natively (no Dockerfile) from --base and --add", EnvVars: env("NATIVE")},
		&ucli.StringFlag{Name: "base", Usage: "native: base image reference (default: none)", EnvVars: env("BASE")},
		&ucli.StringSliceFlag{Name: "add", Usage: "native: SRC:DEST, a directory or file added as one layer", EnvVars: env("ADD")},
		&ucli.StringSliceFlag{Name: "env", Usage: "native: KEY=VALUE environment variable", EnvVars: env("ENV")},
		&ucli.StringFlag{Name: "entrypoint", Usage: "native: entrypoint as a JSON array or one command", EnvVars: env("ENTRYPOINT")},
		&ucli.StringFlag{Name: "cmd", Usage: "native: cmd as a JSON array or one command", EnvVars: env("CMD")},
		&ucli.StringFlag{Name: "user", Usage: "native: user", EnvVars: env("USER")},
		&ucli.StringFlag{Name: "workdir", Usage: "native: working directory", EnvVars: env("WORKDIR")},
	}
}

// Action is build-image's action: flags → Options → Run, the result on stdout.
func Action(cliContext *ucli.Context) error {
	o, err := OptionsFromFlags(cliContext)
	if err != nil {
		return err
	}
	res, err := Run(cliContext.Context, o)
	if err != nil {
		return err
	}
	return printResult(cliContext, res)
}

func printResult(cliContext *ucli.Context, res *result.BuildResult) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cliContext.App.Writer, "%s\n", data)
	return err
}

// buildLog is where the build tools' output goes: stderr as it is, or one
// JSON record per line with --log-format json.
func buildLog(c *ucli.Context) io.Writer {
	if c.String("log-format") == "json" {
		return &logLines{log: slog.Default()}
	}
	return c.App.ErrWriter
}

// logLines logs each line written to it.
type logLines struct {
	log     *slog.Logger
	partial []byte
}

func (l *logLines) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.log.Info("build output", "line", string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

// OptionsFromFlags binds the flags into Options; bad values are usage errors.
func OptionsFromFlags(c *ucli.Context) (Options, error) {
	o := Options{
		BuildFile:  c.String("file"),
		OutputDir:  c.String("output"),
		ResultFile: c.String("result"),
		ZuulReturn: c.String("zuul-return"),
		Backend:    c.String("backend"),
		Insecure:   c.StringSlice("insecure-registry"),
		Tool:       c.App.Name + " " + version.Version,
		Output:     buildLog(c),
		Log:        slog.Default(),
		LookupEnv:  os.LookupEnv,
	}
	var err error
	if o.Args, err = pairs("--build-arg", c.StringSlice("build-arg")); err != nil {
		return o, err
	}
	if s := c.String("source-date-epoch"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return o, cli.Usagef("--source-date-epoch (SOURCE_DATE_EPOCH): %q is not a number of seconds since 1970", s)
		}
		t := time.Unix(n, 0).UTC()
		o.Epoch = &t
	}
	if p := c.String("zuul-vars"); p != "" {
		if o.Zuul, err = zuul.LoadFile(p); err != nil {
			return o, cli.AsUsage(err)
		}
	} else if o.Zuul, err = zuul.FromEnv(os.LookupEnv); err != nil {
		return o, cli.AsUsage(err)
	}
	work := c.String("work-dir")
	o.Buildah = BuildahBackend{Path: c.String("buildah"), Root: c.String("storage-root"), RunRoot: c.String("storage-runroot"),
		StorageDriver: c.String("storage-driver"), Isolation: c.String("isolation"), WorkDir: work}
	o.Docker = DockerBackend{Path: c.String("docker"), WorkDir: work}
	o.Native = NativeBackend{Progress: progress.New(c.App.ErrWriter)}
	single := false
	for _, n := range []string{"context", "dockerfile", "target", "repository", "tag", "label", "secret", "native", "base", "add", "env", "entrypoint", "cmd", "user", "workdir", "name"} {
		if c.IsSet(n) {
			single = true
		}
	}
	if single {
		if o.Image, err = imageFromFlags(c); err != nil {
			return o, err
		}
	}
	return o, nil
}

func imageFromFlags(c *ucli.Context) (*Image, error) {
	im := &Image{
		Name: c.String("name"), Context: c.String("context"), Dockerfile: c.String("dockerfile"), Target: c.String("target"),
		Repository: c.String("repository"), Tags: c.StringSlice("tag"), index: -1,
	}
	if im.Repository == "" {
		return nil, cli.Usagef("--repository: missing: a single image needs its repository (acme/openedx)")
	}
	if im.Name == "" {
		im.Name = filepath.Base(im.Repository)
	}
	var err error
	if im.Labels, err = pairs("--label", c.StringSlice("label")); err != nil {
		return nil, err
	}
	for _, spec := range c.StringSlice("secret") {
		id, src, _ := strings.Cut(spec, "=")
		kind, val, _ := strings.Cut(src, ":")
		switch {
		case id == "" || val == "":
			return nil, cli.Usagef("--secret: %q is not ID=env:VAR or ID=file:PATH", spec)
		case kind == "env":
			im.Secrets = append(im.Secrets, Secret{ID: id, Env: val})
		case kind == "file":
			im.Secrets = append(im.Secrets, Secret{ID: id, File: val})
		default:
			return nil, cli.Usagef("--secret: %q is not ID=env:VAR or ID=file:PATH", spec)
		}
	}
	if !c.Bool("native") {
		for _, n := range []string{"base", "add", "env", "entrypoint", "cmd", "user", "workdir"} {
			if c.IsSet(n) {
				return nil, cli.Usagef("--%s is for native images: add --native", n)
			}
		}
		return im, nil
	}
	n := &Native{Base: c.String("base"), User: c.String("user"), Workdir: c.String("workdir")}
	if n.Env, err = pairs("--env", c.StringSlice("env")); err != nil {
		return nil, err
	}
	for _, a := range c.StringSlice("add") {
		src, dest, ok := strings.Cut(a, ":")
		if !ok || src == "" || dest == "" {
			return nil, cli.Usagef("--add: %q is not SRC:DEST", a)
		}
		n.Layers = append(n.Layers, NativeLayer{Src: src, Dest: dest})
	}
	if n.Entrypoint, err = command("--entrypoint", c.String("entrypoint")); err != nil {
		return nil, err
	}
	if n.Cmd, err = command("--cmd", c.String("cmd")); err != nil {
		return nil, err
	}
	im.Native = n
	return im, nil
}

func pairs(flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, cli.Usagef("%s: %q is not KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func command(flag, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var list []string
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return nil, cli.Usagef("%s: %q is not a JSON array of strings", flag, s)
		}
		return list, nil
	}
	return []string{s}, nil
}
