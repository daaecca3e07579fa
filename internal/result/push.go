package result

import "fmt"

// PushResult is written by push-registry and read by deploy-k8s, which pins
// every image it deploys to the digest recorded here.
type PushResult struct {
	Header
	Zuul   *ZuulRef      `json:"zuul,omitempty"`
	Images []PushedImage `json:"images"`
}

// ResultKind implements Document.
func (r *PushResult) ResultKind() string { return "PushResult" }

// PushedImage is one image as it landed in every region.
type PushedImage struct {
	// Name is the image's name in the build file, or the source reference.
	Name string `json:"name"`
	// Source is where the image was read from (layout path or reference).
	Source string `json:"source"`
	// Digest is the manifest (or index) digest, the same in every region.
	Digest  string         `json:"digest"`
	Regions []RegionPushed `json:"regions"`
}

// RegionPushed records one image in one region.
type RegionPushed struct {
	Region string `json:"region"`
	// Repository is the full repository, registry host included
	// (e.g. "registry.a.example:5000/acme/openedx").
	Repository string `json:"repository"`
	// NodeRepository is the same repository as the region's Kubernetes
	// nodes pull it (e.g. "localhost:5000/acme/openedx" for Magnum's
	// node-local registries); empty when the nodes pull Repository itself.
	NodeRepository string   `json:"nodeRepository,omitempty"`
	Tags           []string `json:"tags"`
	Digest         string   `json:"digest"`
	// Blob counts by how each blob got there.
	BlobsUploaded int   `json:"blobsUploaded"`
	BlobsMounted  int   `json:"blobsMounted"`
	BlobsPresent  int   `json:"blobsPresent"`
	BytesUploaded int64 `json:"bytesUploaded"`
	Verified      bool  `json:"verified"`
}

// Reference returns repository@digest for the image in region as CI pushed
// it (the CI-side registry address).
func (p PushedImage) Reference(region string) (string, error) {
	r, err := p.In(region)
	if err != nil {
		return "", err
	}
	return r.Repository + "@" + r.Digest, nil
}

// NodeReference returns repository@digest for the image in region as the
// region's nodes pull it, the form deploy-k8s writes into manifests by
// default; it is Reference where the region has no node address.
func (p PushedImage) NodeReference(region string) (string, error) {
	r, err := p.In(region)
	if err != nil {
		return "", err
	}
	if r.NodeRepository == "" {
		return r.Repository + "@" + r.Digest, nil
	}
	return r.NodeRepository + "@" + r.Digest, nil
}

// In returns the image's record for region.
func (p PushedImage) In(region string) (RegionPushed, error) {
	for _, r := range p.Regions {
		if r.Region == region {
			return r, nil
		}
	}
	return RegionPushed{}, fmt.Errorf("image %s was not pushed to region %q", p.Name, region)
}
