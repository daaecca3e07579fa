package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/slipwayci/slipway/internal/buildimage"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/progress"
)

// flags are build-image's flags; every one has an environment twin.
func flags() []ucli.Flag {
	env := func(n string) []string { return []string{"SLIPWAY_BUILD_" + n} }
	result := cli.ResultFlag("build", "SLIPWAY_BUILD_RESULT").(*ucli.PathFlag)
	result.Usage += " (default OUTPUT/build-result.json)"
	return append([]ucli.Flag{
		&ucli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "build file (YAML) listing the images", EnvVars: env("FILE")},
		&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "out/images", Usage: "directory for one OCI layout per image", EnvVars: env("OUTPUT")},
		result,
	}, append(cli.ZuulFlags(),
		cli.TimeoutFlag(0),
		&ucli.StringFlag{Name: "backend", Value: buildimage.BackendBuildah, Usage: "backend for Dockerfile images: buildah or docker (needs a daemon)", EnvVars: env("BACKEND")},
		&ucli.StringSliceFlag{Name: "build-arg", Usage: "KEY=VALUE build arg for every image, over the build file's", EnvVars: env("ARGS")},
		&ucli.StringSliceFlag{Name: "insecure-registry", Usage: "HOST:PORT of a plain-HTTP registry for base images", EnvVars: []string{"SLIPWAY_INSECURE_REGISTRIES"}},
		&ucli.StringFlag{Name: "source-date-epoch", Usage: "seconds since 1970: image and file times, for reproducible digests", EnvVars: []string{"SOURCE_DATE_EPOCH"}},
		&ucli.StringFlag{Name: "work-dir", Usage: "directory for temporary build state (default: system temp dir)", EnvVars: env("WORK_DIR")},
		&ucli.StringFlag{Name: "deb-cache", Usage: "directory keeping downloaded Debian packages by SHA-256 (default: USER_CACHE_DIR/slipway/debs)", EnvVars: env("DEB_CACHE")},
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
	)...)
}

// imageFlags are the flags of the image built alone, by the field of
// buildimage.Image they set (the field path errors name).
var imageFlags = map[string]string{
	"name": "--name", "context": "--context", "dockerfile": "--dockerfile", "target": "--target",
	"repository": "--repository", "tags": "--tag", "labels": "--label", "secrets": "--secret",
	"build_args": "--build-arg", "native.base": "--base", "native.layers": "--add", "native.env": "--env",
	"native.entrypoint": "--entrypoint", "native.cmd": "--cmd", "native.user": "--user", "native.workdir": "--workdir",
}

// optionFlags are the other flags, by the option errors name.
var optionFlags = map[string]string{
	"output": "--output", "backend": "--backend", "storage_driver": "--storage-driver",
	"isolation": "--isolation", "storage_root": "--storage-root",
}

// flagOf maps a field path (tags[1], native.layers[0].src, build_args.X)
// to the flag that sets it; a path no flag sets stays as it is.
func flagOf(field string) string {
	base, _, _ := strings.Cut(field, "[") // tags[1] → tags, native.layers[0].src → native.layers
	if k, _, ok := strings.Cut(base, "."); ok && k != "native" && k != "tags" {
		base = k // build_args.X → build_args; tags.change is the file's
	}
	if f, ok := imageFlags[base]; ok {
		return f
	}
	if f, ok := optionFlags[base]; ok {
		return f
	}
	return field
}

// options binds the flags into buildimage.Options; bad values are usage
// errors naming the flag.
func options(cliContext *ucli.Context) (buildimage.Options, error) {
	o := buildimage.Options{
		BuildFile: cliContext.String("file"),
		OutputDir: cliContext.String("output"),
		Backend:   cliContext.String("backend"),
		Insecure:  cliContext.StringSlice("insecure-registry"),
		Output:    buildLog(cliContext),
		Log:       slog.Default(),
		LookupEnv: os.LookupEnv,
	}
	var err error
	if o.Args, err = pairs("--build-arg", cliContext.StringSlice("build-arg")); err != nil {
		return o, err
	}
	if s := cliContext.String("source-date-epoch"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return o, cli.Usagef("--source-date-epoch (SOURCE_DATE_EPOCH): %q is not a number of seconds since 1970", s)
		}
		t := time.Unix(n, 0).UTC()
		o.Epoch = &t
	}
	if o.Zuul, err = cli.ZuulContext(cliContext); err != nil {
		return o, err
	}
	work := cliContext.String("work-dir")
	o.Buildah = buildimage.BuildahBackend{Path: cliContext.String("buildah"), Root: cliContext.String("storage-root"), RunRoot: cliContext.String("storage-runroot"),
		StorageDriver: cliContext.String("storage-driver"), Isolation: cliContext.String("isolation"), WorkDir: work}
	o.Docker = buildimage.DockerBackend{Path: cliContext.String("docker"), WorkDir: work}
	o.Native = buildimage.NativeBackend{Progress: progress.New(cliContext.App.ErrWriter), DebCache: cliContext.String("deb-cache")}
	single := false
	for _, n := range []string{"context", "dockerfile", "target", "repository", "tag", "label", "secret", "native", "base", "add", "env", "entrypoint", "cmd", "user", "workdir", "name"} {
		single = single || cliContext.IsSet(n)
	}
	switch {
	case single && o.BuildFile != "":
		return o, cli.Usagef("--file %s and single-image flags (--context, --repository...) exclude each other: use one", o.BuildFile)
	case single:
		o.Image, err = imageFromFlags(cliContext)
	case o.BuildFile == "":
		return o, cli.Usagef("nothing to build: give --file BUILD.yaml, or --context DIR and --repository NAME for one image")
	}
	return o, err
}

func imageFromFlags(cliContext *ucli.Context) (*buildimage.Image, error) {
	im := &buildimage.Image{
		Name: cliContext.String("name"), Context: cliContext.String("context"), Dockerfile: cliContext.String("dockerfile"),
		Target: cliContext.String("target"), Repository: cliContext.String("repository"), Tags: cliContext.StringSlice("tag"),
	}
	if im.Repository == "" {
		return nil, cli.Usagef("--repository: missing: a single image needs its repository (acme/openedx)")
	}
	if im.Name == "" {
		im.Name = filepath.Base(im.Repository)
	}
	var err error
	if im.Labels, err = pairs("--label", cliContext.StringSlice("label")); err != nil {
		return nil, err
	}
	for _, spec := range cliContext.StringSlice("secret") {
		id, src, _ := strings.Cut(spec, "=")
		kind, val, _ := strings.Cut(src, ":")
		switch {
		case id == "" || val == "":
			return nil, cli.Usagef("--secret: %q is not ID=env:VAR or ID=file:PATH", spec)
		case kind == "env":
			im.Secrets = append(im.Secrets, buildimage.Secret{ID: id, Env: val})
		case kind == "file":
			im.Secrets = append(im.Secrets, buildimage.Secret{ID: id, File: val})
		default:
			return nil, cli.Usagef("--secret: %q is not ID=env:VAR or ID=file:PATH", spec)
		}
	}
	im.Native, err = nativeFromFlags(cliContext)
	return im, err
}

// nativeFromFlags is the native part of the image given by flags: nil
// without --native, which the native flags need.
func nativeFromFlags(cliContext *ucli.Context) (*buildimage.Native, error) {
	if !cliContext.Bool("native") {
		for _, n := range []string{"base", "add", "env", "entrypoint", "cmd", "user", "workdir"} {
			if cliContext.IsSet(n) {
				return nil, cli.Usagef("--%s is for native images: add --native", n)
			}
		}
		return nil, nil
	}
	n := &buildimage.Native{Base: cliContext.String("base"), User: cliContext.String("user"), Workdir: cliContext.String("workdir")}
	var err error
	if n.Env, err = pairs("--env", cliContext.StringSlice("env")); err != nil {
		return nil, err
	}
	for _, a := range cliContext.StringSlice("add") {
		src, dest, ok := strings.Cut(a, ":")
		if !ok || src == "" || dest == "" {
			return nil, cli.Usagef("--add: %q is not SRC:DEST", a)
		}
		n.Layers = append(n.Layers, buildimage.NativeLayer{Src: src, Dest: dest})
	}
	if n.Entrypoint, err = command("--entrypoint", cliContext.String("entrypoint")); err != nil {
		return nil, err
	}
	if n.Cmd, err = command("--cmd", cliContext.String("cmd")); err != nil {
		return nil, err
	}
	return n, nil
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

// buildLog is where the build tools' output goes: stderr as it is, or one
// JSON record per line with --log-format json.
func buildLog(cliContext *ucli.Context) io.Writer {
	if cliContext.String("log-format") == "json" {
		return &logLines{log: slog.Default()}
	}
	return cliContext.App.ErrWriter
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
