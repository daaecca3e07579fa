package buildimage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipwayci/slipway/internal/config"
)

// DockerBackend builds Dockerfiles with a Docker daemon, when one is present
// and asked for. It is deliberately small: build, `docker save`, and a
// conversion to an OCI layout. CI here has no daemon, so only its
// preflight is tested.
type DockerBackend struct {
	// Path is the docker CLI (default "docker" on PATH); it uses
	// DOCKER_HOST and DOCKER_CONFIG from the environment.
	Path         string
	WorkDir      string
	Reproducible bool
	Output       io.Writer
	Log          *slog.Logger

	state string
}

var (
	_ Backend     = (*DockerBackend)(nil)
	_ preflighter = (*DockerBackend)(nil)
)

// Preflight implements preflighter: the daemon must answer.
func (d *DockerBackend) Preflight(ctx context.Context) error {
	if d.Path == "" {
		d.Path = "docker"
	}
	p, err := exec.LookPath(d.Path)
	if err != nil {
		return &config.Error{Field: "backend", Msg: fmt.Sprintf("%q: the docker CLI was not found (%s); use buildah", BackendDocker, d.Path)}
	}
	d.Path = p
	out, err := exec.CommandContext(ctx, p, "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return &config.Error{Field: "backend", Msg: fmt.Sprintf("%q: no Docker daemon answers (%s); start one or use buildah", BackendDocker, msg)}
	}
	return nil
}

// Build implements Backend.
func (d *DockerBackend) Build(ctx context.Context, p *Planned, deps map[string]*Built, dir string) error {
	if d.state == "" {
		s, err := os.MkdirTemp(d.WorkDir, "slipway-docker-")
		if err != nil {
			return fmt.Errorf("creating docker work directory: %w", err)
		}
		d.state = s
	}
	for _, dn := range p.DependsOn {
		if dep := deps[dn]; dep.Backend != BackendDocker {
			if err := d.load(ctx, dep); err != nil {
				return err
			}
		}
	}
	d.log().Info("building with docker", "image", p.Name, "dockerfile", p.Dockerfile)
	flags, err := buildFlags(filepath.Join(d.state, "secrets"), p)
	defer removeAll(filepath.Join(d.state, "secrets"))
	if err != nil {
		return err
	}
	cmd := append(append([]string{"build", "-f", p.Dockerfile, "-t", LocalName(p.Name)}, flags...), p.Context)
	env := os.Environ()
	if len(p.Secrets) > 0 {
		env = append(env, "DOCKER_BUILDKIT=1")
	}
	if d.Reproducible {
		env = append(env, "SOURCE_DATE_EPOCH="+strconv.FormatInt(p.Created.Unix(), 10))
	}
	tw := newTailWriter(d.Output, p.Name, 40)
	c := exec.CommandContext(ctx, d.Path, cmd...)
	c.Env, c.Stdout, c.Stderr = env, tw, tw
	err = c.Run()
	tw.flush()
	if err := toolError("docker build", ctx, err); err != nil {
		return buildFailure(p.Name, tw, err)
	}
	tarPath := filepath.Join(d.state, p.Name+".tar")
	if out, err := exec.CommandContext(ctx, d.Path, "save", "-o", tarPath, LocalName(p.Name)).CombinedOutput(); err != nil {
		return fmt.Errorf("saving %s from docker: %w: %s", p.Name, err, strings.TrimSpace(string(out)))
	}
	defer os.Remove(tarPath)
	tag, err := name.NewTag(LocalName(p.Name))
	if err != nil {
		return err
	}
	img, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		return fmt.Errorf("reading %s saved by docker: %w", p.Name, err)
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating layout for %s: %w", p.Name, err)
	}
	return lp.AppendImage(img)
}

// load makes an image built by another backend available to the daemon.
func (d *DockerBackend) load(ctx context.Context, dep *Built) error {
	img, err := dep.Image()
	if err != nil {
		return err
	}
	tag, err := name.NewTag(LocalName(dep.Name))
	if err != nil {
		return err
	}
	tarPath := filepath.Join(d.state, dep.Name+"-load.tar")
	defer os.Remove(tarPath)
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		return fmt.Errorf("exporting %s for docker: %w", dep.Name, err)
	}
	if out, err := exec.CommandContext(ctx, d.Path, "load", "-i", tarPath).CombinedOutput(); err != nil {
		return fmt.Errorf("loading %s into docker: %w: %s", dep.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close implements Backend.
func (d *DockerBackend) Close(context.Context) error {
	removeAll(d.state)
	d.state = ""
	return nil
}

func (d *DockerBackend) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}
