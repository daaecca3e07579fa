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
	cfg := parseFlags()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg.opts.Logger = log
	if err := cfg.loadFiles(); err != nil {
		return err
	}
	emu, err := openstackemu.New(cfg.opts)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ln, url, err := cfg.listen(srv)
	if err != nil {
		return err
	}
	if cfg.urlFile != "" {
		if err := os.WriteFile(cfg.urlFile, []byte(url+"\n"), 0o644); err != nil {
			return err
		}
	}
	log.Info("serving", "url", url, "identity", url+"/identity/v3", "admin", url+"/admin", "regions", cfg.opts.Regions)
	return serveUntilSignal(srv, ln)
}

// config is the command line: the emulator's options, the files they are
// read from and how to serve the emulator.
type config struct {
	opts                     openstackemu.Options
	listenAddr               string
	usersFile, caCert, caKey string
	tlsCert, tlsKey, urlFile string
}

func parseFlags() *config {
	cfg := &config{opts: openstackemu.Options{Sites: map[string]openstackemu.Site{}}}
	var regions string
	flag.StringVar(&cfg.listenAddr, "listen", "127.0.0.1:0", "address to listen on")
	flag.StringVar(&regions, "regions", "RegionOne", "comma-separated region names")
	flag.StringVar(&cfg.usersFile, "users", "", "JSON file with a list of users (name, password, project, application_credential_id/_name/_secret); default one user demo/secret")
	flag.StringVar(&cfg.caCert, "ca-cert", "", "PEM CA certificate that signs cluster certificates (with -ca-key); default a generated CA")
	flag.StringVar(&cfg.caKey, "ca-key", "", "PEM private key of -ca-cert")
	flag.StringVar(&cfg.opts.APIAddress, "api-address", "", "api_address of created clusters, e.g. a real kube-apiserver URL")
	flag.StringVar(&cfg.opts.MaxMicroversion, "max-microversion", "1.10", "highest container-infra microversion served")
	flag.BoolVar(&cfg.opts.UpgradeUnsupported, "upgrade-unsupported", false, "answer actions/upgrade with 400 NotSupported, as Magnum without in-place upgrades")
	flag.DurationVar(&cfg.opts.CreateDuration, "create-duration", 3*time.Second, "time a cluster stays CREATE_IN_PROGRESS")
	flag.DurationVar(&cfg.opts.UpdateDuration, "update-duration", 2*time.Second, "time a cluster stays UPDATE_IN_PROGRESS")
	flag.DurationVar(&cfg.opts.DeleteDuration, "delete-duration", time.Second, "time a cluster stays DELETE_IN_PROGRESS")
	flag.DurationVar(&cfg.opts.TokenTTL, "token-ttl", time.Hour, "token lifetime")
	flag.StringVar(&cfg.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (with -tls-key)")
	flag.StringVar(&cfg.tlsKey, "tls-key", "", "key of -tls-cert")
	flag.StringVar(&cfg.urlFile, "url-file", "", "write the base URL here once listening")
	flag.Func("site", "`REGION=API_ADDRESS,CA_CERT,CA_KEY`: the Kubernetes of one region's clusters (repeatable; other regions take -api-address and -ca-cert)", cfg.addSite)
	flag.Parse()
	cfg.opts.Regions = strings.Split(regions, ",")
	return cfg
}

// addSite reads one -site flag.
func (c *config) addSite(v string) error {
	name, rest, _ := strings.Cut(v, "=")
	parts := strings.Split(rest, ",")
	if name == "" || len(parts) != 3 || parts[0] == "" {
		return fmt.Errorf("%q is not REGION=API_ADDRESS,CA_CERT,CA_KEY", v)
	}
	cert, key, err := loadCA(parts[1], parts[2])
	if err != nil {
		return err
	}
	c.opts.Sites[name] = openstackemu.Site{APIAddress: parts[0], CACert: cert, CAKey: key}
	return nil
}

// loadFiles reads -users and the -ca-cert/-ca-key pair into the options.
func (c *config) loadFiles() error {
	if c.usersFile != "" {
		data, err := os.ReadFile(c.usersFile)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c.opts.Users); err != nil {
			return fmt.Errorf("%s: %w", c.usersFile, err)
		}
	}
	if (c.caCert == "") != (c.caKey == "") {
		return errors.New("-ca-cert and -ca-key go together")
	}
	if c.caCert != "" {
		var err error
		if c.opts.CACert, c.opts.CAKey, err = loadCA(c.caCert, c.caKey); err != nil {
			return err
		}
	}
	return nil
}

// listen opens -listen for srv, with TLS when -tls-cert is set, and returns
// the listener and the base URL it serves.
func (c *config) listen(srv *http.Server) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", c.listenAddr)
	if err != nil {
		return nil, "", err
	}
	scheme := "http"
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, "", err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	return ln, scheme + "://" + ln.Addr().String(), nil
}

// serveUntilSignal serves ln until SIGINT or SIGTERM, then shuts srv down
// within 5 seconds.
func serveUntilSignal(srv *http.Server, ln net.Listener) error {
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
