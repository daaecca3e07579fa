package openstackemu

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/http"
	"time"
)

// caPEM is the CA of the clusters of region name.
func (e *Emulator) caPEM(name string) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.site(name).CACert.Raw}))
}

func (e *Emulator) getCA(q *request, ident string) *apiError {
	c, err := e.findCluster(q, ident)
	if err != nil {
		return err
	}
	writeJSON(q.w, http.StatusOK, map[string]any{"cluster_uuid": c.uuid, "pem": e.caPEM(q.region.name), "links": link(q, "certificates", c.uuid)})
	return nil
}

// signCertificate signs a client CSR with the CA the way
// magnum/common/x509/operations.py does: the CSR's subject, client auth,
// five years.
func (e *Emulator) signCertificate(q *request) *apiError {
	var req struct {
		ClusterUUID string `json:"cluster_uuid"`
		BayUUID     string `json:"bay_uuid"`
		CSR         string `json:"csr"`
		PEM         string `json:"pem"`
	}
	if err := decodeBody(q, &req, "certificate"); err != nil {
		return err
	}
	ident := req.ClusterUUID
	if ident == "" {
		ident = req.BayUUID
	}
	c, err := e.findCluster(q, ident)
	if err != nil {
		return err
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return errorf(http.StatusBadRequest, "Invalid CSR: no PEM CERTIFICATE REQUEST block.")
	}
	csr, perr := x509.ParseCertificateRequest(block.Bytes)
	if perr != nil {
		return errorf(http.StatusBadRequest, "Invalid CSR: %v", perr)
	}
	if perr := csr.CheckSignature(); perr != nil {
		return errorf(http.StatusBadRequest, "Invalid CSR signature: %v", perr)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	now := e.opts.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               csr.Subject,
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	site := e.site(q.region.name)
	der, cerr := x509.CreateCertificate(rand.Reader, tmpl, site.CACert, csr.PublicKey, site.CAKey)
	if cerr != nil {
		return errorf(http.StatusInternalServerError, "Signing the certificate: %v", cerr)
	}
	writeJSON(q.w, http.StatusCreated, map[string]any{
		"cluster_uuid": c.uuid, "csr": req.CSR,
		"pem":   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		"links": link(q, "certificates", c.uuid),
	})
	return nil
}
