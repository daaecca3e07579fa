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
	Repository string   `json:"repository"`
	Tags       []string `json:"tags"`
	Digest     string   `json:"digest"`
	// Blob counts by how each blob got there.
	BlobsUploaded int   `json:"blobsUploaded"`
	BlobsMounted  int   `json:"blobsMounted"`
	BlobsPresent  int   `json:"blobsPresent"`
	BytesUploaded int64 `json:"bytesUploaded"`
	Verified      bool  `json:"verified"`
}

// Reference returns repository@digest for the image in region, the form
// deploy-k8s writes into manifests.
func (p PushedImage) Reference(region string) (string, error) {
	for _, r := range p.Regions {
		if r.Region == region {
			return r.Repository + "@" + r.Digest, nil
		}
	}
	return "", fmt.Errorf("image %s was not pushed to region %q", p.Name, region)
}
