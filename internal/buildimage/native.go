package buildimage

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/progress"
)

// NativeBackend builds images with go-containerregistry alone: no external tool,
// no daemon, and the same digest for the same inputs on any machine.
type NativeBackend struct {
	// Insecure lists registries (host:port) reached over plain HTTP.
	// Loopback registries are always plain HTTP.
	Insecure []string
	// Platform picks the base from a multi-platform index (default
	// linux/<GOARCH>).
	Platform *v1.Platform
	// Transport is the HTTP transport for base pulls (default: retrying).
	Transport http.RoundTripper
	// DebCache keeps downloaded Debian packages by digest (default
	// DefaultDebCache()).
	DebCache string
	// Progress reports bytes written per layer (default: nothing).
	Progress *progress.Printer
	Log      *slog.Logger
}

var _ Backend = (*NativeBackend)(nil)

// Close implements Backend.
func (n *NativeBackend) Close(context.Context) error { return nil }

// Build implements Backend: base image, then one layer per native layer,
// then config changes, written into the OCI layout at dir.
func (n *NativeBackend) Build(ctx context.Context, p *Planned, deps map[string]*Built, dir string) error {
	base, err := n.base(ctx, p, deps)
	if err != nil {
		return err
	}
	mt, err := base.MediaType()
	if err != nil {
		return fmt.Errorf("reading base of %s: %w", p.Name, err)
	}
	layerType := types.OCILayer
	if mt == types.DockerManifestSchema2 {
		layerType = types.DockerLayer
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating layout for %s: %w", p.Name, err)
	}
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return fmt.Errorf("creating layout for %s: %w", p.Name, err)
	}
	created := v1.Time{Time: p.Created}
	var adds []mutate.Addendum
	for i, l := range p.Native.Layers {
		var fl *fileLayer
		var files []string
		var err error
		what, createdBy := l.Src, "slipway native: add "+filepath.Base(l.Src)+" "+l.Dest
		if l.Debian != nil {
			what, createdBy = l.Debian.Lock, "slipway native: add the Debian packages of "+filepath.Base(l.Debian.Lock)
			files, err = newDebFetcher(n.DebCache, n.Transport, n.log()).fetchAll(ctx, l.Debian.lock)
			if err != nil {
				return fmt.Errorf("building layer %d (%s) of %s: %w", i, what, p.Name, err)
			}
		}
		n.log().Info("adding layer", "image", p.Name, "src", what, "dest", l.Dest)
		task := n.progress().Start(fmt.Sprintf("%s layer %d", p.Name, i+1), 0)
		if l.Debian != nil {
			fl, err = writeDebianLayer(ctx, blobDir, l.Debian.lock, files, p.Created, layerType, task)
		} else {
			fl, err = writeLayerBlob(ctx, blobDir, l.Src, l.Dest, p.Created, layerType, task)
		}
		if err != nil {
			task.Done("failed")
			return fmt.Errorf("building layer %d (%s) of %s: %w", i, what, p.Name, err)
		}
		task.Done("%s compressed to %s", progress.Bytes(fl.size), fl.digest)
		adds = append(adds, mutate.Addendum{
			Layer:     fl,
			MediaType: layerType,
			History:   v1.History{Created: created, CreatedBy: createdBy},
		})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return fmt.Errorf("adding layers to %s: %w", p.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading config of %s: %w", p.Name, err)
	}
	cf = cf.DeepCopy()
	applyConfig(cf, p)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("setting config of %s: %w", p.Name, err)
	}
	img = mutate.Annotations(img, manifestAnnotations(p.Labels)).(v1.Image)
	if err := lp.AppendImage(img); err != nil {
		return fmt.Errorf("writing %s to its layout: %w", p.Name, err)
	}
	return nil
}

func (n *NativeBackend) progress() *progress.Printer {
	if n.Progress == nil {
		return progress.Discard()
	}
	return n.Progress
}

func (n *NativeBackend) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}

func (n *NativeBackend) base(ctx context.Context, p *Planned, deps map[string]*Built) (v1.Image, error) {
	switch {
	case p.Native.BaseImage != "":
		d := deps[p.Native.BaseImage]
		if d == nil {
			return nil, fmt.Errorf("base image %s of %s was not built", p.Native.BaseImage, p.Name)
		}
		return d.Image()
	case p.Base != "":
		var opts []name.Option
		ref0, err := name.ParseReference(p.Base)
		if err != nil {
			return nil, fmt.Errorf("parsing base %s of %s: %w", p.Base, p.Name, err)
		}
		if slices.Contains(n.Insecure, ref0.Context().RegistryStr()) {
			opts = append(opts, name.Insecure)
		}
		ref, err := name.ParseReference(p.Base, opts...)
		if err != nil {
			return nil, fmt.Errorf("parsing base %s of %s: %w", p.Base, p.Name, err)
		}
		plat := n.Platform
		if plat == nil {
			plat = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		}
		tr := n.Transport
		if tr == nil {
			tr = httpx.UserAgent(httpx.Retry(remote.DefaultTransport, httpx.DefaultRetry()), "build-image")
		}
		n.log().Info("pulling base", "image", p.Name, "base", p.Base)
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
			remote.WithPlatform(*plat), remote.WithTransport(tr))
		if err != nil {
			return nil, fmt.Errorf("pulling base %s of %s: %w (is the registry up, and the reference right?)", p.Base, p.Name, err)
		}
		return img, nil
	default:
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", runtime.GOARCH
		if n.Platform != nil {
			cf.OS, cf.Architecture, cf.Variant = n.Platform.OS, n.Platform.Architecture, n.Platform.Variant
		}
		return mutate.ConfigFile(img, cf)
	}
}

// applyConfig makes the config changes of a native image, the way the
// matching Dockerfile instructions would.
func applyConfig(cf *v1.ConfigFile, p *Planned) {
	c := &cf.Config
	for _, k := range slices.Sorted(maps.Keys(p.Native.Env)) {
		kv := k + "=" + p.Native.Env[k]
		replaced := false
		for i, e := range c.Env {
			if strings.HasPrefix(e, k+"=") {
				c.Env[i], replaced = kv, true
			}
		}
		if !replaced {
			c.Env = append(c.Env, kv)
		}
	}
	if p.Native.Entrypoint != nil {
		c.Entrypoint = p.Native.Entrypoint
		c.Cmd = nil // as ENTRYPOINT in a Dockerfile resets an inherited CMD
	}
	if p.Native.Cmd != nil {
		c.Cmd = p.Native.Cmd
	}
	if p.Native.User != "" {
		c.User = p.Native.User
	}
	if p.Native.Workdir != "" {
		c.WorkingDir = p.Native.Workdir
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range p.Labels {
		c.Labels[k] = v
	}
	cf.Created = v1.Time{Time: p.Created}
}

// manifestAnnotations are the standard labels that also go on the manifest,
// where registries and OCI tools look for them.
func manifestAnnotations(labels map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{LabelSource, LabelRevision, LabelCreated} {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// sortedPairs returns m as sorted KEY=VALUE strings, for stable arguments.
func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
