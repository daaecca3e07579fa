package pushtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"
)

// ZeroObject replaces a Swift object with a zero-byte one: what a failed
// upload of a blob leaves in Swift/Ceph.
func ZeroObject(t testing.TB, sc *gophercloud.ServiceClient, container, object string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := objects.Create(ctx, sc, container, object, objects.CreateOpts{Content: strings.NewReader("")}).Err; err != nil {
		t.Fatalf("zeroing %s/%s: %v", container, object, err)
	}
}

// CorruptObject flips the bytes of a Swift object, or of the first
// segment of a large object, keeping its size: corruption at rest that a
// HEAD cannot see.
func CorruptObject(t testing.TB, sc *gophercloud.ServiceClient, container, object string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := objects.Get(ctx, sc, container, object, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	segContainer, seg := container, object
	if h.ObjectManifest != "" {
		var prefix string
		segContainer, prefix, _ = strings.Cut(h.ObjectManifest, "/")
		pages, err := objects.List(sc, segContainer, objects.ListOpts{Prefix: prefix}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names, err := objects.ExtractNames(pages)
		if err != nil || len(names) == 0 {
			t.Fatalf("segments of %s: %v %v", object, names, err)
		}
		seg = names[0]
	}
	dl := objects.Download(ctx, sc, segContainer, seg, nil)
	data, err := dl.ExtractContent()
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0xff
	}
	if err := objects.Create(ctx, sc, segContainer, seg, objects.CreateOpts{Content: bytes.NewReader(data)}).Err; err != nil {
		t.Fatalf("corrupting %s/%s: %v", segContainer, seg, err)
	}
}
