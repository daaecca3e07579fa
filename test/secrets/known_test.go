package secrets

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/test/zuulconfig"
)

func ecKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func names(ss []Secret) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// TestFromEnv reads a test env's variables and the files they name: each
// secret by name, every other SLIPWAY_TEST_* value public, and a key found
// in any copy of its PEM text or as a kubeconfig's client-key-data.
func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	inline, onDisk, ca := ecKeyPEM(t), ecKeyPEM(t), ecKeyPEM(t)
	keyFile := write(t, dir, "admin.key", onDisk)
	kubeconfig := write(t, dir, "kubeconfig", []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users:
- {name: inline, user: {client-key-data: `+base64.StdEncoding.EncodeToString(inline)+`}}
- {name: file, user: {client-key: `+keyFile+`}}
- {name: bearer, user: {token: tok-0123456789}}
contexts: [{name: c, context: {cluster: c, user: inline}}]
current-context: c
`))
	clouds := write(t, dir, "clouds.yaml", []byte(`clouds:
  pw: {auth: {auth_url: "http://k/v3", username: u, password: cloud-password-1}, region_name: R}
  ac: {auth_type: v3applicationcredential, auth: {application_credential_id: id1, application_credential_secret: appcred-secret-1}}
`))
	environ := []string{
		"SLIPWAY_TEST_S3_SECRET_KEY=s3-secret-0123", "SLIPWAY_TEST_S3_BUCKET=bucket-1",
		"SLIPWAY_TEST_MONGO_PRIMARY_URI=mongodb://u:p@h/", "SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID=id1",
		"SLIPWAY_TEST_KUBECONFIG=" + kubeconfig, "SLIPWAY_TEST_KUBE_CA_KEY=" + write(t, dir, "ca.key", ca),
		"SLIPWAY_TEST_OS_CLIENT_CONFIG_FILE=" + clouds, "SLIPWAY_TEST_EMPTY=", "HOME=/root",
		"SLIPWAY_TEST_MARIADB_DR_USER=slipway-restore", "SLIPWAY_TEST_MARIADB_DR_PASSWORD=mysql-password-1",
	}
	k, err := FromEnv(environ)
	if err != nil {
		t.Fatal(err)
	}
	kc := "SLIPWAY_TEST_KUBECONFIG user "
	want := []string{
		"SLIPWAY_TEST_KUBE_CA_KEY", "SLIPWAY_TEST_KUBE_CA_KEY",
		kc + "bearer token", kc + "file client key", kc + "file client key",
		kc + "inline client key", kc + "inline client key", kc + "inline client-key-data",
		"SLIPWAY_TEST_MARIADB_DR_PASSWORD",
		"SLIPWAY_TEST_MONGO_PRIMARY_URI", "SLIPWAY_TEST_OS_CLIENT_CONFIG_FILE ac application_credential_secret",
		"SLIPWAY_TEST_OS_CLIENT_CONFIG_FILE pw password", "SLIPWAY_TEST_S3_SECRET_KEY",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, names(k.Secrets)); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"SLIPWAY_TEST_MARIADB_DR_USER", "SLIPWAY_TEST_S3_BUCKET"}, names(k.Public)); diff != "" {
		t.Errorf("public (-want +got):\n%s", diff)
	}
	// Each key is found in its own PEM text and nowhere in the others'.
	for _, c := range []struct {
		name string
		pem  []byte
	}{{kc + "inline client key", inline}, {kc + "file client key", onDisk}, {"SLIPWAY_TEST_KUBE_CA_KEY", ca}} {
		for _, s := range k.Secrets {
			if strings.HasSuffix(s.Name, "client-key-data") {
				continue
			}
			if in := bytes.Contains(c.pem, []byte(s.Value)); in != (s.Name == c.name) {
				t.Errorf("%s: value of %s found in it: %v", c.name, s.Name, in)
			}
		}
	}
}

// TestPipeline reads a local pipeline's secret values the way
// hack/pipeline.sh writes them: the fields zuul.d/secrets.yaml encrypts
// are secrets, the others public; before the file exists, nothing.
func TestPipeline(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	src := Pipeline(root, state)
	if k, err := src(); err != nil || len(k.Secrets)+len(k.Public) > 0 {
		t.Fatalf("before secrets.yaml: %+v, %v", k, err)
	}
	write(t, state, "secrets.yaml", []byte(`slipway-registry-region-a: {username: "", password: "reg-password-a"}
slipway-s3-region-a: &s3
  endpoint: "http://127.0.0.1:9000"
  bucket: backups
  access_key: access-0123
  secret_key: secret-0123
slipway-s3-region-b: *s3
slipway-databases-dr: {mysql_user: root, mysql_password: "", mongodb_uri: "mongodb://127.0.0.1:1/"}
`))
	k, err := src()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"slipway-databases-dr.mongodb_uri", "slipway-databases-dr.mysql_password",
		"slipway-registry-region-a.password",
		"slipway-s3-region-a.access_key", "slipway-s3-region-a.secret_key",
		"slipway-s3-region-b.access_key", "slipway-s3-region-b.secret_key"}
	if diff := cmp.Diff(want, names(k.Secrets)); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	wantPublic := []string{"slipway-databases-dr.mysql_user", "slipway-registry-region-a.username",
		"slipway-s3-region-a.bucket", "slipway-s3-region-a.endpoint", "slipway-s3-region-b.bucket", "slipway-s3-region-b.endpoint"}
	if diff := cmp.Diff(wantPublic, names(k.Public)); diff != "" {
		t.Errorf("public (-want +got):\n%s", diff)
	}
	// A secret no zuul.d secret declares is not guessed at: all public.
	cfg, err := zuulconfig.LoadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if k := FromSecrets(cfg, map[string]map[string]any{"other": {"password": "x"}}); len(k.Secrets) != 0 {
		t.Errorf("undeclared secret: %+v", k.Secrets)
	}
}
