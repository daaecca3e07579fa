package deploy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

// secretsFile is what --secrets-file holds: Secrets by name, each key to
// its value.
type secretsFile struct {
	Secrets map[string]map[string]logging.Secret `yaml:"secrets"`
}

// ReadSecretsFile reads a secrets file, {secrets: {NAME: {KEY: VALUE}}}
// (a region's Zuul secrets written by the job), into Secret objects and
// the hash of their content. The file must not be readable by group or
// others. Values are registered so that no log line or error shows them,
// and no error names one: every problem is a user error naming the file,
// its line and the field.
func ReadSecretsFile(file string) ([]*unstructured.Unstructured, string, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, "", usererr.Errorf("reading secrets file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, "", usererr.Errorf("secrets file %s: not a regular file", file)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, "", usererr.Errorf("secrets file %s: mode %04o lets group or others read it: chmod 600 %s", file, perm, file)
	}
	var sf secretsFile
	doc, err := config.DecodeFile(file, &sf, config.EmptyHint("it needs secrets: {NAME: {KEY: VALUE}}"))
	if err != nil {
		return nil, "", err
	}
	if len(sf.Secrets) == 0 {
		return nil, "", doc.Errorf("secrets", "no Secrets (write secrets: {NAME: {KEY: VALUE}})")
	}
	h := sha256.New()
	objs := make([]*unstructured.Unstructured, 0, len(sf.Secrets))
	for _, name := range slices.Sorted(maps.Keys(sf.Secrets)) {
		field := "secrets." + name
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, "", doc.Errorf(field, "%q is not a Secret name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)", name)
		}
		if name == applySetParentName || strings.HasPrefix(name, "slipway-rev-") {
			return nil, "", doc.Errorf(field, "%q is a name deploy-k8s keeps for itself (slipway, slipway-rev-N)", name)
		}
		keys := sf.Secrets[name]
		if len(keys) == 0 {
			return nil, "", doc.Errorf(field, "no keys (write %s: {KEY: VALUE})", name)
		}
		data := map[string]string{}
		for _, key := range slices.Sorted(maps.Keys(keys)) {
			if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
				return nil, "", doc.Errorf(field+"."+key, "%q is not a Secret key (letters, digits, '-', '_' and '.')", key)
			}
			v := keys[key].Reveal()
			enc := base64.StdEncoding.EncodeToString([]byte(v))
			logging.Register(v, enc)
			data[key] = enc
			h.Write([]byte(name + "\x00" + key + "\x00" + v + "\x00"))
		}
		objs = append(objs, secretObject(name, data))
	}
	return objs, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// secretObject is an Opaque Secret with base64 data.
func secretObject(name string, data map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name},
		"type":     "Opaque",
	}}
	if data != nil {
		d := map[string]any{}
		for k, v := range data {
			d[k] = v
		}
		u.Object["data"] = d
	}
	return u
}
