package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os/exec"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// fastRetry keeps fault tests quick; the policy is the same shape as prod.
func fastRetry() *httpx.RetryPolicy {
	return &httpx.RetryPolicy{Attempts: 4, Base: 10 * time.Millisecond, Max: 100 * time.Millisecond}
}

// skopeoDigest reads ref's manifest with skopeo (an independent client) and
// returns the sha256 of its raw bytes.
func skopeoDigest(t *testing.T, ref string) string {
	t.Helper()
	sk := testenv.Tool(t, "skopeo")
	cmd := exec.Command(sk, "inspect", "--raw", "--tls-verify=false", "docker://"+ref)
	cmd.Env = append(cmd.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("skopeo inspect %s: %v: %s", ref, err, stderr)
	}
	sum := sha256.Sum256(out)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// regionsAB returns the two real regions.
func regionsAB(t *testing.T) []Region {
	a, b := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B")
	return []Region{{Name: "a", Registry: a}, {Name: "b", Registry: b}}
}

func quietOpts(regions []Region) Options {
	return Options{Regions: regions, Conn: Conn{Retry: fastRetry()}, StallTimeout: 5 * time.Second, ResponseTimeout: 30 * time.Second}
}

// layoutOpts are quietOpts pushing img (an image or an index), from a layout
// of its own, to repo with tags.
func layoutOpts(t *testing.T, regions []Region, img pushtest.Content, repo string, tags ...string) Options {
	o := quietOpts(regions)
	o.Source, o.Repository, o.Tags = "oci:"+pushtest.WriteLayout(t, img), repo, tags
	return o
}

func run(t *testing.T, o Options) (*result.PushResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return Run(ctx, o)
}

// bytesBlob is an in-memory blob for fan-out tests.
func bytesBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Size:   int64(len(data)),
		open:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}
}
