package httpx

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool returns the system's trusted certificates plus the PEM
// certificates in file, for a server whose certificate a private CA signed.
// Its errors name file; the caller adds which setting gave it.
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
