package deploy

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// podSpecPaths are where each workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

var containerLists = []string{"initContainers", "containers", "ephemeralContainers"}

// ImageRef is an image reference split into its parts.
type ImageRef struct {
	// Repository includes the registry host when the reference has one.
	Repository string
	Tag        string
	Digest     string
}

// ParseImageRef splits ref into repository, tag and digest. It accepts what
// Kubernetes accepts in a container's image field, without normalising
// (no implicit docker.io or library/).
func ParseImageRef(ref string) (ImageRef, error) {
	var r ImageRef
	rest := ref
	if i := strings.Index(rest, "@"); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if !strings.HasPrefix(r.Digest, "sha256:") || len(r.Digest) != len("sha256:")+64 {
			return ImageRef{}, fmt.Errorf("image %q: digest %q is not sha256:<64 hex>", ref, r.Digest)
		}
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if r.Tag == "" {
			return ImageRef{}, fmt.Errorf("image %q: empty tag", ref)
		}
	}
	if rest == "" || strings.ContainsAny(rest, " \t\n") || strings.HasPrefix(rest, "/") || strings.HasSuffix(rest, "/") || strings.Contains(rest, "//") {
		return ImageRef{}, fmt.Errorf("image %q: not a valid image reference", ref)
	}
	r.Repository = rest
	return r, nil
}

// Path returns the repository without its registry host.
func (r ImageRef) Path() string {
	first, rest, ok := strings.Cut(r.Repository, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return rest
	}
	return r.Repository
}

// Pull addresses: the registry address a deploy pins images to.
const (
	// PullNode pins the address the region's nodes pull from (Magnum's
	// localhost:5000 on every node, the push result's node repository),
	// or the CI address where the push result records none.
	PullNode = "node"
	// PullCI pins the address CI pushed to, for clusters that pull from a
	// shared registry.
	PullCI = "ci"
)

// Pinner maps image references in manifests to the digests push-registry
// recorded for one region.
type Pinner struct {
	region string
	// byKey maps a pushed image's full repository, its path without host
	// and its build name to repository@digest in the region.
	byKey map[string]pinned
	allow []string
}

type pinned struct {
	ref    string
	digest string
	name   string
}

// NewPinner indexes push for region, pinning to address (PullNode or
// PullCI; empty means PullNode). A manifest may name a pushed image by its
// CI or node repository, either without its host, or its build name. allow
// lists glob patterns (path.Match, on the repository) of images that were
// not pushed by this pipeline and may be deployed as written (e.g.
// "docker.io/library/mysql").
func NewPinner(push *result.PushResult, region, address string, allow []string) (*Pinner, error) {
	if address == "" {
		address = PullNode
	}
	if address != PullNode && address != PullCI {
		return nil, optionErrorf("PullAddress", "pull address %q: want %s (the address the region's nodes pull) or %s (the address CI pushed to)", address, PullNode, PullCI)
	}
	p := &Pinner{region: region, byKey: map[string]pinned{}, allow: allow}
	for _, pat := range allow {
		if _, err := path.Match(pat, ""); err != nil {
			return nil, optionErrorf("AllowImages", "allowed image pattern %q: %w", pat, err)
		}
	}
	if push == nil {
		return p, nil
	}
	for _, img := range push.Images {
		in, err := img.In(region)
		if err != nil {
			return nil, &OptionError{Option: "Region", Err: usererr.Errorf("push result: %w", err)}
		}
		if in.Digest == "" {
			return nil, usererr.Errorf("push result: image %s has no digest in region %s", img.Name, region)
		}
		ref, _ := img.Reference(region)
		if address == PullNode {
			ref, _ = img.NodeReference(region)
		}
		keys := []string{img.Name}
		for _, repo := range []string{in.Repository, in.NodeRepository} {
			if repo == "" {
				continue
			}
			parsed, err := ParseImageRef(repo)
			if err != nil {
				return nil, usererr.Errorf("push result: image %s: %w", img.Name, err)
			}
			keys = append(keys, repo, parsed.Path())
		}
		v := pinned{ref: ref, digest: in.Digest, name: img.Name}
		for _, k := range keys {
			if k == "" {
				continue
			}
			if old, ok := p.byKey[k]; ok && old.ref != ref {
				return nil, usererr.Errorf("push result: images %s and %s both match %q: image references in manifests would be ambiguous", old.name, img.Name, k)
			}
			p.byKey[k] = v
		}
	}
	return p, nil
}

// Pin rewrites the image of every container in objs to repository@digest and
// returns what it pinned, sorted by reference. An image that was not pushed
// and is not allowed is a usage error naming the object and container.
func (p *Pinner) Pin(objs []*unstructured.Unstructured) ([]result.DeployedImage, error) {
	seen := map[string]result.DeployedImage{}
	for _, u := range objs {
		specPath, ok := podSpecPaths[u.GetKind()]
		if !ok {
			continue
		}
		for _, list := range containerLists {
			fields := append(append([]string{}, specPath...), list)
			containers, found, err := unstructured.NestedSlice(u.Object, fields...)
			if err != nil {
				return nil, usererr.Errorf("%s: field %s: %w", objectID(u), strings.Join(fields, "."), err)
			}
			if !found {
				continue
			}
			for i, c := range containers {
				cm, ok := c.(map[string]any)
				if !ok {
					return nil, usererr.Errorf("%s: field %s[%d] is not an object", objectID(u), strings.Join(fields, "."), i)
				}
				image, _ := cm["image"].(string)
				name, _ := cm["name"].(string)
				newImage, err := p.pinOne(image)
				if err != nil {
					return nil, usererr.Errorf("%s container %q: %w", objectID(u), name, err)
				}
				cm["image"] = newImage
				if newImage != image {
					_, digest, _ := strings.Cut(newImage, "@")
					seen[image] = result.DeployedImage{Reference: image, Pinned: newImage, Digest: digest}
				}
			}
			if err := unstructured.SetNestedSlice(u.Object, containers, fields...); err != nil {
				return nil, fmt.Errorf("setting images of %s: %w", objectID(u), err)
			}
		}
	}
	out := make([]result.DeployedImage, 0, len(seen))
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[k])
	}
	return out, nil
}

func (p *Pinner) pinOne(image string) (string, error) {
	if image == "" {
		return "", fmt.Errorf("field image is empty")
	}
	ref, err := ParseImageRef(image)
	if err != nil {
		return "", err
	}
	for _, k := range []string{ref.Repository, ref.Path()} {
		if v, ok := p.byKey[k]; ok {
			if ref.Digest != "" && ref.Digest != v.digest {
				return "", fmt.Errorf("image %q is pinned to %s but push-registry pushed %s to region %s", image, ref.Digest, v.digest, p.region)
			}
			return v.ref, nil
		}
	}
	for _, pat := range p.allow {
		if ok, _ := path.Match(pat, ref.Repository); ok {
			return image, nil
		}
	}
	return "", &OptionError{Option: "AllowImages", Err: fmt.Errorf("image %q was not pushed (not in the push result for region %s): push it first, or allow its repository", image, p.region)}
}
