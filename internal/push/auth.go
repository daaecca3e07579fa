package push

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/logging"
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
		s, err := readSecrets(a.SecretsFile)
		if err != nil {
			return err
		}
		a.secrets = s
	}
	return nil
}

func readDockerConfig(path string) (dockerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return dockerConfig{}, badInput("auth file: %v", err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return dockerConfig{}, badInput("auth file %s: not a docker config.json: %v", path, err)
	}
	for host, e := range cfg.Auths {
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil || !bytes.Contains(raw, []byte(":")) {
				return dockerConfig{}, badInput("auth file %s: auths[%q].auth is not base64 of user:password", path, host)
			}
			u, p, _ := strings.Cut(string(raw), ":")
			e.Username, e.Password = u, p
			cfg.Auths[host] = e
		}
		logging.Register(e.Password, e.IdentityToken, e.RegistryToken, e.Auth)
	}
	return cfg, nil
}

func readSecrets(path string) (map[string]Credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, badInput("secrets file: %v", err)
	}
	return parseSecrets(bytes.NewReader(data), path)
}

// parseSecrets decodes the registry_credentials variable of a Zuul vars file.
// Other top-level variables are allowed (it is a vars file); the credentials
// themselves are decoded strictly.
func parseSecrets(r io.Reader, path string) (map[string]Credential, error) {
	var top map[string]yaml.Node
	if err := yaml.NewDecoder(r).Decode(&top); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badInput("secrets file %s: empty, want registry_credentials", path)
		}
		return nil, badInput("secrets file %s: %s", path, yamlErr(err))
	}
	node, ok := top["registry_credentials"]
	if !ok {
		return nil, badInput("secrets file %s: no registry_credentials variable", path)
	}
	var out map[string]Credential
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(&node); err != nil {
		return nil, badInput("secrets file %s: %s", path, yamlErr(err))
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(&out); err != nil {
		// Line numbers from the re-encoded node are relative; name the variable.
		return nil, badInput("secrets file %s: line %d: registry_credentials: %s", path, node.Line, scrubYAML(yamlErr(err)))
	}
	for k, c := range out {
		logging.Register(c.Password.Reveal(), c.Token.Reveal())
		if c.Username == "" && c.Token.Empty() {
			return nil, badInput("secrets file %s: line %d: registry_credentials.%s: username is empty", path, node.Line, k)
		}
		c.From = "secrets file"
		out[k] = c
	}
	return out, nil
}

// scrubYAML removes quoted values from yaml.v3 errors, which may echo a
// password that was given where a mapping was expected.
func scrubYAML(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "`")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.Index(s[i+1:], "`")
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("`…`")
		s = s[i+1+j+1:]
	}
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
				return Credential{}, badInput("region %s: %sPASSWORD is set but %sUSERNAME is not", r.Name, p, p)
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
