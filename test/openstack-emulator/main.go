// Command openstack-emulator serves internal/openstackemu (Keystone v3 and
// Magnum v1) on a TCP address for the local pipeline and the tests. It is a
// test fixture: hack/servers/openstack.sh starts it.
//
//	openstack-emulator -listen 127.0.0.1:5000 -users users.json \
//	    -ca-cert kube/ca.crt -ca-key kube/ca.key -api-address https://127.0.0.1:6443
package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/slipwayci/slipway/internal/openstackemu"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "openstack-emulator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen     = flag.String("listen", "127.0.0.1:0", "address to listen on")
		regions    = flag.String("regions", "RegionOne", "comma-separated region names")
		usersFile  = flag.String("users", "", "JSON file with a list of users (name, password, project, application_credential_id/_name/_secret); default one user demo/secret")
		caCert     = flag.String("ca-cert", "", "PEM CA certificate that signs cluster certificates (with -ca-key); default a generated CA")
		caKey      = flag.String("ca-key", "", "PEM private key of -ca-cert")
		apiAddress = flag.String("api-address", "", "api_address of created clusters, e.g. a real kube-apiserver URL")
		maxMV      = flag.String("max-microversion", "1.10", "highest container-infra microversion served")
		noUpgrade  = flag.Bool("upgrade-unsupported", false, "answer actions/upgrade with 400 NotSupported, as Magnum without in-place upgrades")
		create     = flag.Duration("create-duration", 3*time.Second, "time a cluster stays CREATE_IN_PROGRESS")
		update     = flag.Duration("update-duration", 2*time.Second, "time a cluster stays UPDATE_IN_PROGRESS")
		del        = flag.Duration("delete-duration", time.Second, "time a cluster stays DELETE_IN_PROGRESS")
		tokenTTL   = flag.Duration("token-ttl", time.Hour, "token lifetime")
		tlsCert    = flag.String("tls-cert", "", "serve HTTPS with this certificate (with -tls-key)")
		tlsKey     = flag.String("tls-key", "", "key of -tls-cert")
		urlFile    = flag.String("url-file", "", "write the base URL here once listening")
	)
	sites := map[string]openstackemu.Site{}
	flag.Func("site", "`REGION=API_ADDRESS,CA_CERT,CA_KEY`: the Kubernetes of one region's clusters (repeatable; other regions take -api-address and -ca-cert)", func(v string) error {
		name, rest, _ := strings.Cut(v, "=")
		parts := strings.Split(rest, ",")
		if name == "" || len(parts) != 3 || parts[0] == "" {
			return fmt.Errorf("%q is not REGION=API_ADDRESS,CA_CERT,CA_KEY", v)
		}
		cert, key, err := loadCA(parts[1], parts[2])
		if err != nil {
			return err
		}
		sites[name] = openstackemu.Site{APIAddress: parts[0], CACert: cert, CAKey: key}
		return nil
	})
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts := openstackemu.Options{
		Regions: strings.Split(*regions, ","), APIAddress: *apiAddress, MaxMicroversion: *maxMV,
		UpgradeUnsupported: *noUpgrade, CreateDuration: *create, UpdateDuration: *update, DeleteDuration: *del,
		TokenTTL: *tokenTTL, Logger: log, Sites: sites,
	}
	if *usersFile != "" {
		data, err := os.ReadFile(*usersFile)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts.Users); err != nil {
			return fmt.Errorf("%s: %w", *usersFile, err)
		}
	}
	if (*caCert == "") != (*caKey == "") {
		return errors.New("-ca-cert and -ca-key go together")
	}
	if *caCert != "" {
		var err error
		if opts.CACert, opts.CAKey, err = loadCA(*caCert, *caKey); err != nil {
			return err
		}
	}
	emu, err := openstackemu.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	scheme := "http"
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	url := scheme + "://" + ln.Addr().String()
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(url+"\n"), 0o644); err != nil {
			return err
		}
	}
	log.Info("serving", "url", url, "identity", url+"/identity/v3", "admin", url+"/admin", "regions", opts.Regions)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func loadCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA %s / %s: %w", certPath, keyPath, err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("CA key %s cannot sign", keyPath)
	}
	return cert, signer, nil
}
