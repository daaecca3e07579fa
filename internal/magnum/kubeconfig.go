package magnum

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/certificates"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/result"
)

// kubeconfig is the subset of the kubeconfig format written, the same shape
// `openstack coe cluster config` writes: one cluster, user "admin", context
// "default".
type kubeconfig struct {
	APIVersion     string             `yaml:"apiVersion"`
	Kind           string             `yaml:"kind"`
	Clusters       []namedKubeCluster `yaml:"clusters"`
	Users          []namedKubeUser    `yaml:"users"`
	Contexts       []namedKubeContext `yaml:"contexts"`
	CurrentContext string             `yaml:"current-context"`
}

type namedKubeCluster struct {
	Name    string `yaml:"name"`
	Cluster struct {
		Server                   string `yaml:"server"`
		CertificateAuthorityData string `yaml:"certificate-authority-data"`
	} `yaml:"cluster"`
}

type namedKubeUser struct {
	Name string `yaml:"name"`
	User struct {
		ClientCertificateData string `yaml:"client-certificate-data"`
		ClientKeyData         string `yaml:"client-key-data"`
	} `yaml:"user"`
}

type namedKubeContext struct {
	Name    string `yaml:"name"`
	Context struct {
		Cluster string `yaml:"cluster"`
		User    string `yaml:"user"`
	} `yaml:"context"`
}

// keyBits is the client key size; RSA as Magnum's own client generates.
const keyBits = 2048

func serverURL(apiAddress string) string {
	if strings.Contains(apiAddress, "://") {
		return apiAddress
	}
	return "https://" + apiAddress
}

// ensureKubeconfig writes a kubeconfig for cluster c to o.Kubeconfig, unless
// the file there is already one for this cluster with a certificate valid
// for more than a day. It reports whether it wrote.
func ensureKubeconfig(ctx context.Context, o *Options, a *api, c *clusters.Cluster) (bool, error) {
	if c.APIAddress == "" || !strings.HasSuffix(c.Status, "_COMPLETE") {
		return false, fmt.Errorf("cluster %s has no Kubernetes API yet (status %s): run cluster ensure first", c.Name, c.Status)
	}
	ca, err := certificates.Get(ctx, a.sc, c.UUID).Extract()
	if err != nil {
		return false, a.explain("fetching the CA of cluster "+c.Name, err)
	}
	server := serverURL(c.APIAddress)
	if current(o.Kubeconfig, server, ca.PEM, o.Now()) {
		o.Log.Info("kubeconfig is current: nothing to do", "path", o.Kubeconfig, "cluster", c.Name)
		return false, nil
	}
	keyPEM, csr, err := newClientKey()
	if err != nil {
		return false, err
	}
	signed, err := certificates.Create(ctx, a.sc, certificates.CreateOpts{ClusterUUID: c.UUID, CSR: string(csr)}).Extract()
	if err != nil {
		return false, a.explain("having Magnum sign the client certificate for cluster "+c.Name, err)
	}
	crashpoint.Hit("magnum.kubeconfig")
	data, err := kubeconfigFor(c.Name, server, ca.PEM, signed.PEM, keyPEM)
	if err != nil {
		return false, err
	}
	if err := result.WriteAtomic(o.Kubeconfig, data, 0o600); err != nil {
		return false, err
	}
	o.Log.Info("kubeconfig written", "path", o.Kubeconfig, "cluster", c.Name, "server", server)
	return true, nil
}

// newClientKey makes the client's RSA key (PEM) and its certificate request
// (PEM) for CN=admin, O=system:masters.
func newClientKey() (keyPEM, csrPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the client key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), nil
}

// kubeconfigFor encodes the kubeconfig of cluster name at server: user
// "admin" with the signed certificate and key, context "default".
func kubeconfigFor(name, server, caPEM, certPEM string, keyPEM []byte) ([]byte, error) {
	kc := kubeconfig{APIVersion: "v1", Kind: "Config", CurrentContext: "default",
		Clusters: make([]namedKubeCluster, 1), Users: make([]namedKubeUser, 1), Contexts: make([]namedKubeContext, 1)}
	kc.Clusters[0].Name = name
	kc.Clusters[0].Cluster.Server = server
	kc.Clusters[0].Cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString([]byte(caPEM))
	kc.Users[0].Name = "admin"
	kc.Users[0].User.ClientCertificateData = base64.StdEncoding.EncodeToString([]byte(certPEM))
	kc.Users[0].User.ClientKeyData = base64.StdEncoding.EncodeToString(keyPEM)
	kc.Contexts[0].Name = "default"
	kc.Contexts[0].Context.Cluster = name
	kc.Contexts[0].Context.User = "admin"
	data, err := yaml.Marshal(&kc)
	if err != nil {
		return nil, fmt.Errorf("encoding the kubeconfig: %w", err)
	}
	return data, nil
}

// current reports whether path holds a kubeconfig for server whose CA is
// caPEM and whose client certificate that CA signed and is valid for more
// than a day.
func current(path, server, caPEM string, now time.Time) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var kc kubeconfig
	if yaml.Unmarshal(data, &kc) != nil || len(kc.Clusters) != 1 || len(kc.Users) != 1 {
		return false
	}
	cl, u := kc.Clusters[0].Cluster, kc.Users[0].User
	caData, err1 := base64.StdEncoding.DecodeString(cl.CertificateAuthorityData)
	certData, err2 := base64.StdEncoding.DecodeString(u.ClientCertificateData)
	keyData, err3 := base64.StdEncoding.DecodeString(u.ClientKeyData)
	if errors.Join(err1, err2, err3) != nil || cl.Server != server || !bytes.Equal(bytes.TrimSpace(caData), bytes.TrimSpace([]byte(caPEM))) || len(keyData) == 0 {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caData) {
		return false
	}
	block, _ := pem.Decode(certData)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || now.Add(24*time.Hour).After(cert.NotAfter) {
		return false
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// KubeconfigWritten is what the kubeconfig command did.
type KubeconfigWritten struct {
	Cluster    string `json:"cluster"`
	Kubeconfig string `json:"kubeconfig"`
	Server     string `json:"server"`
	Written    bool   `json:"written"` // false: the file there was current
}

// Kubeconfig writes a kubeconfig for the cluster (from the spec or by name)
// to o.Kubeconfig.
func Kubeconfig(ctx context.Context, o Options) (*KubeconfigWritten, error) {
	if o.Kubeconfig == "" && o.KubeconfigDir == "" {
		return nil, ErrNoKubeconfig
	}
	name, a, c, err := startWithCluster(ctx, &o)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("cluster %s does not exist in region %s: create it with cluster ensure", name, a.regionName())
	}
	wrote, err := ensureKubeconfig(ctx, &o, a, c)
	if err != nil {
		return nil, err
	}
	return &KubeconfigWritten{Cluster: c.Name, Kubeconfig: o.Kubeconfig, Server: serverURL(c.APIAddress), Written: wrote}, nil
}
