package openstackemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/certificates"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
)

// TestSites gives region B's clusters a Kubernetes of their own: its
// api_address, and certificates from its CA that region A's CA does not
// accept (and the other way round).
func TestSites(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	caB, keyB, err := generateCA(now)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, Options{CreateDuration: time.Second, APIAddress: "https://a.example:6443",
		Sites: map[string]Site{"RegionB": {APIAddress: "https://b.example:6443", CACert: caB, CAKey: keyB}}})
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))

	type site struct {
		api    string
		ca     *x509.Certificate
		signed *x509.Certificate
	}
	got := map[string]site{}
	for _, region := range []string{"RegionA", "RegionB"} {
		sc := f.client(t, password(), region, "1.10")
		ct := createTemplate(t, sc, "k8s", "v1.21.10")
		id, err := clusters.Create(ctx, sc, clusters.CreateOpts{Name: "c", ClusterTemplateID: ct.UUID}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Add(2 * time.Second)
		c, err := clusters.Get(ctx, sc, id).Extract()
		if err != nil {
			t.Fatal(err)
		}
		ca, err := certificates.Get(ctx, sc, id).Extract()
		if err != nil {
			t.Fatal(err)
		}
		signed, err := certificates.Create(ctx, sc, certificates.CreateOpts{ClusterUUID: id, CSR: csr}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		got[region] = site{api: c.APIAddress, ca: parsePEM(t, ca.PEM), signed: parsePEM(t, signed.PEM)}
	}
	if a, b := got["RegionA"], got["RegionB"]; a.api != "https://a.example:6443" || b.api != "https://b.example:6443" {
		t.Fatalf("api_address: RegionA %q, RegionB %q; want each region's own", a.api, b.api)
	}
	if !got["RegionB"].ca.Equal(caB) || got["RegionA"].ca.Equal(caB) || !got["RegionA"].ca.Equal(f.emu.CA()) {
		t.Fatal("each region's certificates API must return its own CA")
	}
	for _, tc := range []struct {
		cert, ca string
		ok       bool
	}{{"RegionA", "RegionA", true}, {"RegionB", "RegionB", true}, {"RegionA", "RegionB", false}, {"RegionB", "RegionA", false}} {
		pool := x509.NewCertPool()
		pool.AddCert(got[tc.ca].ca)
		_, err := got[tc.cert].signed.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: f.clock.Now()})
		if (err == nil) != tc.ok {
			t.Errorf("certificate of %s against the CA of %s: err = %v, want ok=%t", tc.cert, tc.ca, err, tc.ok)
		}
	}

	for _, bad := range []map[string]Site{
		{"RegionC": {APIAddress: "https://c.example:6443"}},
		{"RegionB": {CACert: caB}},
	} {
		if _, err := New(Options{Regions: []string{"RegionA", "RegionB"}, Sites: bad}); err == nil {
			t.Errorf("New with sites %v: no error", bad)
		}
	}
}

func parsePEM(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatalf("no PEM block in %q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
