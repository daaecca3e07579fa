package push

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

// Credential is a registry login. Password and Token never print.
type Credential struct {
	Username string         `yaml:"username"`
	Password logging.Secret `yaml:"password"`
	// Token is a registry identity token (docker config "identitytoken").
	Token logging.Secret `yaml:"token"`
	// From says where the credential came from, for logs ("env", "auth file ...").
	From string `yaml:"-"`
}

func (c Credential) empty() bool {
	return c.Username == "" && c.Password.Empty() && c.Token.Empty()
}

func (c Credential) authenticator() authn.Authenticator {
	if c.empty() {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      c.Username,
		Password:      c.Password.Reveal(),
		IdentityToken: c.Token.Reveal(),
	})
}

// Auth says where registry credentials come from. For each region the first
// source that has a credential wins: the Zuul secrets file, the environment,
// the region's own auth file, the global auth file; else anonymous.
type Auth struct {
	// AuthFile is a docker config.json (REGISTRY_AUTH_FILE, or
	// $DOCKER_CONFIG/config.json). Empty: none.
	AuthFile string
	// SecretsFile is a YAML vars file holding a Zuul secret:
	//
	//	registry_credentials:
	//	  a: {username: ci, password: ...}       # key: region name or registry host
	SecretsFile string
	// Env looks up SLIPWAY_REGISTRY_<REGION>_USERNAME, _PASSWORD and _TOKEN
	// (region name upper-cased, - as _). Nil: no environment credentials.
	Env func(string) (string, bool)

	files   map[string]dockerConfig
	secrets map[string]Credential
	swift   map[string]SwiftCredential
}

type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// load reads and checks every file once, before anything is pushed, so an
// unreadable auth file is a usage error and nothing moves.
func (a *Auth) load(regions []Region) error {
	a.files = map[string]dockerConfig{}
	paths := []string{a.AuthFile}
	for _, r := range regions {
		paths = append(paths, r.AuthFile)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if _, done := a.files[p]; done {
			continue
		}
		cfg, err := readDockerConfig(p)
		if err != nil {
			return err
		}
		a.files[p] = cfg
	}
	if a.SecretsFile != "" {
		sf, err := readSecrets(a.SecretsFile)
		if err != nil {
			return err
		}
		a.secrets, a.swift = sf.RegistryCredentials, sf.SwiftCredentials
	}
	return nil
}

func readDockerConfig(path string) (dockerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return dockerConfig{}, usererr.Errorf("auth file: %w", err)
	}
	// docker and podman write this file and add keys of their own
	// (credsStore, HttpHeaders...): it is read as they read it, not strictly.
	var cfg dockerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return dockerConfig{}, usererr.Errorf("auth file %s: not a docker config.json: %w", path, err)
	}
	for host, e := range cfg.Auths {
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil || !bytes.Contains(raw, []byte(":")) {
				return dockerConfig{}, usererr.Errorf("auth file %s: auths[%q].auth is not base64 of user:password", path, host)
			}
			u, p, _ := strings.Cut(string(raw), ":")
			e.Username, e.Password = u, p
			cfg.Auths[host] = e
		}
		logging.Register(e.Password, e.IdentityToken, e.RegistryToken, e.Auth)
	}
	return cfg, nil
}

func readSecrets(path string) (*secretsFile, error) {
	var root yaml.Node
	if _, err := config.DecodeFile(path, &root, secretsHint); err != nil {
		return nil, err
	}
	return secretsFrom(path, &root)
}

// parseSecrets decodes the credential variables of a Zuul vars file read
// from r (file names it in errors); see secretsFrom.
func parseSecrets(r io.Reader, file string) (*secretsFile, error) {
	var root yaml.Node
	if _, err := config.Decode(r, file, &root, secretsHint); err != nil {
		return nil, err
	}
	return secretsFrom(file, &root)
}

var secretsHint = config.EmptyHint("it needs registry_credentials or swift_credentials")

// secretsFile is the part of a Zuul secret vars file push-registry reads:
// registry logins, and the Keystone logins of storage-backed regions.
type secretsFile struct {
	RegistryCredentials map[string]Credential      `yaml:"registry_credentials"`
	SwiftCredentials    map[string]SwiftCredential `yaml:"swift_credentials"`
}

// secretVars are the variables secretsFrom reads, with the shape of one
// entry for errors.
var secretVars = map[string]string{
	"registry_credentials": "username, password or token",
	"swift_credentials":    "username, password, trustid",
}

// secretsFrom decodes the credential variables of a vars file. Other
// top-level variables are left alone (it is a vars file); the credentials
// themselves are decoded strictly. No error shows a value of the file: any
// of them may be a secret.
func secretsFrom(file string, root *yaml.Node) (*secretsFile, error) {
	section, err := credentialsSection(file, root)
	if err != nil {
		return nil, err
	}
	var sf secretsFile
	doc, err := config.DecodeNode(file, section, &sf)
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(sf.RegistryCredentials)) {
		c := sf.RegistryCredentials[k]
		logging.Register(c.Password.Reveal(), c.Token.Reveal())
		if c.Username == "" && c.Token.Empty() {
			return nil, doc.Errorf("registry_credentials."+k, "username is empty (give username and password, or a token)")
		}
		c.From = "secrets file"
		sf.RegistryCredentials[k] = c
	}
	for _, k := range slices.Sorted(maps.Keys(sf.SwiftCredentials)) {
		c := sf.SwiftCredentials[k]
		logging.Register(c.Password.Reveal(), c.TrustID.Reveal())
		if c.Password.Empty() {
			return nil, doc.Errorf("swift_credentials."+k, "password is empty (give username, password and, for a Magnum trustee, trustid)")
		}
		c.From = "secrets file"
		sf.SwiftCredentials[k] = c
	}
	return &sf, nil
}

// credentialsSection returns a document holding only the credential
// variables (secretVars) of a vars file, once their shape is checked:
// the decoder quotes a scalar found where a mapping belongs, and that scalar
// may be a password.
func credentialsSection(file string, root *yaml.Node) (*yaml.Node, error) {
	shape := func(n *yaml.Node, field, want string) error {
		if n.Kind == yaml.MappingNode {
			return nil
		}
		return &config.Error{File: file, Line: n.Line, Field: field, Msg: "must be a mapping of " + want + " (the value is not shown: it may be a secret)"}
	}
	if err := shape(root, "", "variables"); err != nil {
		return nil, err
	}
	section := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		entry, ok := secretVars[k.Value]
		if !ok {
			continue
		}
		if seen[k.Value] {
			return nil, &config.Error{File: file, Line: k.Line, Field: k.Value, Msg: "given twice"}
		}
		seen[k.Value] = true
		if err := shape(v, k.Value, "REGION or HOST: {"+entry+"}"); err != nil {
			return nil, err
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			if err := shape(v.Content[j+1], k.Value+"."+v.Content[j].Value, entry); err != nil {
				return nil, err
			}
		}
		section.Content = append(section.Content, k, v)
	}
	if len(section.Content) == 0 {
		return nil, &config.Error{File: file, Msg: "no registry_credentials or swift_credentials variable (want registry_credentials: {REGION or HOST: {username, password}} or swift_credentials: {REGION: {username, password, trustid}})"}
	}
	return section, nil
}

func envPrefix(region string) string {
	return "SLIPWAY_REGISTRY_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(region)) + "_"
}

// credential resolves the login for one region.
func (a *Auth) credential(r Region) (Credential, error) {
	if c, ok := a.secrets[r.Name]; ok {
		return c, nil
	}
	if c, ok := a.secrets[r.Registry]; ok {
		return c, nil
	}
	if a.Env != nil {
		p := envPrefix(r.Name)
		u, _ := a.Env(p + "USERNAME")
		pw, _ := a.Env(p + "PASSWORD")
		tok, _ := a.Env(p + "TOKEN")
		logging.Register(pw, tok)
		c := Credential{Username: u, Password: logging.Secret(pw), Token: logging.Secret(tok), From: "environment " + p + "*"}
		if !c.empty() {
			if c.Username == "" && c.Token.Empty() {
				return Credential{}, usererr.Errorf("region %s: %sPASSWORD is set but %sUSERNAME is not", r.Name, p, p)
			}
			return c, nil
		}
	}
	for _, path := range []string{r.AuthFile, a.AuthFile} {
		if path == "" {
			continue
		}
		if c, ok := lookupDockerConfig(a.files[path], r.Registry); ok {
			c.From = "auth file " + path
			return c, nil
		}
	}
	return Credential{From: "anonymous"}, nil
}

func lookupDockerConfig(cfg dockerConfig, host string) (Credential, bool) {
	for k, e := range cfg.Auths {
		key := k
		if i := strings.Index(key, "://"); i >= 0 {
			key = key[i+3:]
		}
		key, _, _ = strings.Cut(key, "/")
		if key != host {
			continue
		}
		tok := e.IdentityToken
		if tok == "" {
			tok = e.RegistryToken
		}
		return Credential{Username: e.Username, Password: logging.Secret(e.Password), Token: logging.Secret(tok)}, true
	}
	return Credential{}, false
}

// String never includes the secret parts.
func (c Credential) String() string {
	if c.empty() {
		return "anonymous"
	}
	return fmt.Sprintf("user %q from %s", c.Username, c.From)
}
