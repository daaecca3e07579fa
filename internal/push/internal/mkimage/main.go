// Command mkimage writes a test image of random, incompressible layers to an
// OCI layout, for push-registry's benchmark and manual checks.
//
//	go run ./internal/push/internal/mkimage -out DIR -layers 8 -size 26214400 [-index 2]
package main

import (
	"flag"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/push/pushtest"
)

func main() {
	out := flag.String("out", "", "OCI layout directory to create")
	layers := flag.Int("layers", 8, "layers per image")
	size := flag.Int64("size", 1<<20, "bytes per layer (random, incompressible)")
	index := flag.Int("index", 0, "if > 0, write an index of this many images")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mkimage: -out is required")
		os.Exit(2)
	}
	d, err := write(*out, *layers, *size, *index)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println(d)
}

func write(dir string, layers int, size int64, index int) (v1.Hash, error) {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if index <= 0 {
		im, err := pushtest.NewImage(layers, size)
		if err != nil {
			return v1.Hash{}, err
		}
		if err := p.AppendImage(im); err != nil {
			return v1.Hash{}, err
		}
		return im.Digest()
	}
	var ii v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i := 0; i < index; i++ {
		im, err := pushtest.NewImage(layers, size)
		if err != nil {
			return v1.Hash{}, err
		}
		ii = mutate.AppendManifests(ii, mutate.IndexAddendum{Add: im, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: []string{"amd64", "arm64", "s390x", "ppc64le"}[i%4]}}})
	}
	if err := p.AppendIndex(ii); err != nil {
		return v1.Hash{}, err
	}
	return ii.Digest()
}
