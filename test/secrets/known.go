package secrets

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/test/zuulconfig"
)

// Secret is one known secret value. Name says where it comes from
// (SLIPWAY_TEST_S3_SECRET_KEY, slipway-s3-region-a.secret_key); reports
// show the name, never the value.
type Secret struct{ Name, Value string }

// Known is a set of secrets and the public values found beside them (a
// bucket name, an endpoint, a user name), by name.
type Known struct {
	Secrets []Secret
	Public  []Secret
}

// MinLen is the shortest value looked for: a shorter one ("root", an empty
// password) would be found everywhere, or nowhere.
const MinLen = 8

// Merge returns the secrets and public values of every k.
func Merge(ks ...Known) Known {
	var out Known
	for _, k := range ks {
		out.Secrets = append(out.Secrets, k.Secrets...)
		out.Public = append(out.Public, k.Public...)
	}
	return out
}

// set is what a Sampler looks for. A secret that is part of a public value
// cannot be told apart from it (the test servers' S3 access key is also
// their bucket's name): it is skipped, and the report says so.
type set struct {
	secrets map[string]string // value -> name of the first secret with it
	public  map[string]string // value -> name
}

func newSet() *set { return &set{secrets: map[string]string{}, public: map[string]string{}} }

// add reports whether k brought anything new.
func (s *set) add(k Known) bool {
	changed := false
	for _, x := range k.Secrets {
		if _, ok := s.secrets[x.Value]; !ok {
			s.secrets[x.Value], changed = x.Name, true
		}
	}
	for _, x := range k.Public {
		if _, ok := s.public[x.Value]; !ok && x.Value != "" {
			s.public[x.Value], changed = x.Name, true
		}
	}
	return changed
}

// skipReason says why a secret value is not looked for ("" if it is).
func (s *set) skipReason(v string) string {
	if v == "" {
		return "empty"
	}
	if len(v) < MinLen {
		return fmt.Sprintf("shorter than %d characters", MinLen)
	}
	for p, name := range s.public {
		if strings.Contains(p, v) {
			return "also the public value " + name
		}
	}
	return ""
}

func (s *set) active() []Secret {
	var out []Secret
	for v, name := range s.secrets {
		if s.skipReason(v) == "" {
			out = append(out, Secret{name, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *set) skippedReasons() []string {
	var out []string
	for v, name := range s.secrets {
		if r := s.skipReason(v); r != "" {
			out = append(out, name+": "+r)
		}
	}
	sort.Strings(out)
	return out
}

// envSecrets are the SLIPWAY_TEST_* variables of hack/testenv.sh that hold
// secrets; envSecretFiles name files that hold some.
var (
	envSecrets = []string{
		"SLIPWAY_TEST_OS_PASSWORD", "SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_SECRET",
		"SLIPWAY_TEST_S3_ACCESS_KEY", "SLIPWAY_TEST_S3_SECRET_KEY",
		"SLIPWAY_TEST_MONGO_PRIMARY_URI", "SLIPWAY_TEST_MONGO_DR_URI",
		"SLIPWAY_TEST_MARIADB_PRIMARY_PASSWORD", "SLIPWAY_TEST_MARIADB_DR_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD", "SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_TRUST_ID",
	}
	envSecretFiles = map[string]func(name, path string) (Known, error){
		"SLIPWAY_TEST_KUBECONFIG":                        Kubeconfig,
		"SLIPWAY_TEST_KUBE_CA_KEY":                       PEMFile,
		"SLIPWAY_TEST_OS_CLIENT_CONFIG_FILE":             Clouds,
		"SLIPWAY_TEST_SWIFT_KEYSTONE_CLIENT_CONFIG_FILE": Clouds,
		"SLIPWAY_TEST_KUBE_B_KUBECONFIG":                 Kubeconfig,
		"SLIPWAY_TEST_KUBE_B_CA_KEY":                     PEMFile,
	}
)

// FromEnv returns the secrets of a hack/testenv.sh environment: its
// passwords, keys and URIs, and those in the files it names (the admin
// kubeconfig's client key, the cluster CA's key, clouds.yaml). Every other
// SLIPWAY_TEST_* value is public. The application credential's ID is
// neither: Zuul's secrets encrypt it, the test servers print it.
func FromEnv(environ []string) (Known, error) {
	var k Known
	var errs []error
	secret := map[string]bool{"SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID": true}
	for _, n := range envSecrets {
		secret[n] = true
	}
	for _, e := range environ {
		name, v, _ := strings.Cut(e, "=")
		if !strings.HasPrefix(name, "SLIPWAY_TEST_") || v == "" {
			continue
		}
		if read, ok := envSecretFiles[name]; ok {
			fk, err := read(name, v)
			if err != nil {
				errs = append(errs, err)
			}
			k = Merge(k, fk)
			continue
		}
		switch {
		case name == "SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID":
		case secret[name]:
			k.Secrets = append(k.Secrets, Secret{name, v})
		default:
			k.Public = append(k.Public, Secret{name, v})
		}
	}
	return k, errors.Join(errs...)
}

// Pipeline is the Source of a local pipeline's secrets (hack/pipeline.sh):
// the values in STATE/secrets.yaml of every field zuul.d/secrets.yaml
// (under root) encrypts; its other fields are public. Until the file is
// written it returns nothing.
func Pipeline(root, state string) Source {
	var cfg *zuulconfig.Config
	return func() (Known, error) {
		if cfg == nil {
			c, err := zuulconfig.LoadDir(root)
			if err != nil {
				return Known{}, err
			}
			cfg = c
		}
		path := filepath.Join(state, "secrets.yaml")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return Known{}, nil
		}
		values := map[string]map[string]any{}
		if _, err := config.DecodeFile(path, &values); err != nil {
			return Known{}, fmt.Errorf("reading the pipeline's secrets: %w", err)
		}
		return FromSecrets(cfg, values), nil
	}
}

// FromSecrets returns the local values (secret name -> data) of cfg's
// secrets: encrypted fields are secrets, the others public.
func FromSecrets(cfg *zuulconfig.Config, values map[string]map[string]any) Known {
	var k Known
	for _, name := range zuulconfig.SortedNames(values) {
		encrypted := map[string]bool{}
		if s, ok := cfg.Secrets[name]; ok {
			for _, p := range s.Encrypted {
				encrypted[p] = true
			}
		}
		leaves("", values[name], func(path, v string) {
			x := Secret{name + "." + path, v}
			if encrypted[path] {
				k.Secrets = append(k.Secrets, x)
			} else {
				k.Public = append(k.Public, x)
			}
		})
	}
	return k
}

// leaves calls f with the dotted path and text of every scalar in v.
func leaves(path string, v any, f func(path, v string)) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		for _, k := range zuulconfig.SortedNames(x) {
			leaves(join(k), x[k], f)
		}
	case []any:
		for i, e := range x {
			leaves(fmt.Sprintf("%s[%d]", path, i), e, f)
		}
	case nil:
	default:
		f(path, fmt.Sprint(x))
	}
}

// Kubeconfig returns the credentials of a kubeconfig's users: client keys
// (inline or in the files it names), tokens, passwords.
func Kubeconfig(name, path string) (Known, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return Known{}, fmt.Errorf("%s: %w", name, err)
	}
	var k Known
	for _, user := range zuulconfig.SortedNames(cfg.AuthInfos) {
		a := cfg.AuthInfos[user]
		n := name + " user " + user
		if len(a.ClientKeyData) > 0 {
			k = Merge(k, pemSecrets(n+" client key", a.ClientKeyData))
			k.Secrets = append(k.Secrets, Secret{n + " client-key-data", base64.StdEncoding.EncodeToString(a.ClientKeyData)})
		}
		if a.ClientKey != "" {
			pk, err := PEMFile(n+" client key", a.ClientKey)
			if err != nil {
				return k, err
			}
			k = Merge(k, pk)
		}
		for field, v := range map[string]string{"token": a.Token, "password": a.Password} {
			if v != "" {
				k.Secrets = append(k.Secrets, Secret{n + " " + field, v})
			}
		}
	}
	return k, nil
}

// PEMFile returns the private key in a PEM file.
func PEMFile(name, path string) (Known, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Known{}, fmt.Errorf("%s: %w", name, err)
	}
	return pemSecrets(name, data), nil
}

// pemSecrets looks for a PEM key by two lines of its base64 body, the
// first and the middle one: either is in any copy of the PEM text, and
// together they cover the private part of RSA and EC keys.
func pemSecrets(name string, data []byte) Known {
	var k Known
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		lines := strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes}))), "\n")
		body := lines[1 : len(lines)-1]
		if len(body) == 0 {
			continue
		}
		k.Secrets = append(k.Secrets, Secret{name, body[0]}, Secret{name, body[len(body)/2]})
	}
	return k
}

// Clouds returns the passwords, tokens and application credential secrets
// of a clouds.yaml.
func Clouds(name, path string) (Known, error) {
	var doc struct {
		Clouds map[string]map[string]any `yaml:"clouds"`
	}
	if _, err := config.DecodeFile(path, &doc); err != nil {
		return Known{}, fmt.Errorf("%s: %w", name, err)
	}
	var k Known
	for _, cloud := range zuulconfig.SortedNames(doc.Clouds) {
		leaves("", doc.Clouds[cloud]["auth"], func(field, v string) {
			switch field {
			case "password", "token", "application_credential_secret":
				k.Secrets = append(k.Secrets, Secret{name + " " + cloud + " " + field, v})
			}
		})
	}
	return k, nil
}

// Files is the Source of the secrets in the files matching pattern (a
// filepath.Glob pattern), read by read: files a run writes and removes,
// such as the kubeconfig a deploy job fetches from Magnum. A file that
// goes away between the glob and the read is skipped.
func Files(pattern string, read func(name, path string) (Known, error)) Source {
	return func() (Known, error) {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			return Known{}, err
		}
		var k Known
		var errs []error
		for _, p := range paths {
			fk, err := read(p, p)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			k = Merge(k, fk)
		}
		return k, errors.Join(errs...)
	}
}
