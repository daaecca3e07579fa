package deploy

import (
	"testing"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
)

// TestPullAddress: the live objects pin the node address (Magnum's
// localhost:5000) when the push result has one, the CI address when asked,
// and the CI address as before when the push result has no node address.
func TestPullAddress(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	nodePush, digest := deploytest.WritePushNode(t, "v1")
	ciPush, _ := deploytest.WritePush(t, "v1")
	tests := []struct {
		name, push, address string
		wantImage, wantAddr string
	}{
		{name: "node by default", push: nodePush, wantImage: "localhost:5000/overhangio/openedx@" + digest, wantAddr: PullNode},
		{name: "CI address asked for", push: nodePush, address: PullCI, wantImage: "registry-a.example:5000/overhangio/openedx@" + digest, wantAddr: PullCI},
		{name: "no node address recorded", push: ciPush, wantImage: "registry-a.example:5000/overhangio/openedx@" + digest, wantAddr: PullNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			branch := k.Branch(t, "pull")
			opts := k.opts(t, branch, deploytest.PlatformTree(t), tt.push)
			opts.PullAddress = tt.address
			opts.NoWait = true
			res, err := Deploy(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			ns, _ := NamespaceFor(branch, DefaultBranchPrefix, "")
			if got := k.deploymentImage(t, ns, "lms"); got != tt.wantImage {
				t.Errorf("live lms image = %q, want %q", got, tt.wantImage)
			}
			if res.PullAddress != tt.wantAddr {
				t.Errorf("result pull address = %q, want %q", res.PullAddress, tt.wantAddr)
			}
			var pinned string
			for _, img := range res.Images {
				if img.Reference == "docker.io/overhangio/openedx:18.0.0" {
					pinned = img.Pinned
				}
			}
			if pinned != tt.wantImage {
				t.Errorf("result pins the openedx image to %q, want %q (images %+v)", pinned, tt.wantImage, res.Images)
			}
		})
	}
}
