package backup

import (
	"os"
	"strings"

	"filippo.io/age"

	"github.com/slipwayci/slipway/internal/usererr"
)

// readRecipients parses age recipients: "age1..." strings or files of them.
func readRecipients(specs []string, n Names) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range specs {
		if strings.HasPrefix(s, "age1") {
			r, err := age.ParseX25519Recipient(s)
			if err != nil {
				return nil, usererr.Errorf("%s %q: %w", n.of("AgeRecipients"), s, err)
			}
			out = append(out, r)
			continue
		}
		f, err := os.Open(s)
		if err != nil {
			return nil, usererr.Errorf("%s %q is neither an age1... key nor a readable file: %w", n.of("AgeRecipients"), s, err)
		}
		rs, err := age.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, usererr.Errorf("%s file %s: %w", n.of("AgeRecipients"), s, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// readIdentities parses age identity files (the private keys).
func readIdentities(paths []string, n Names) ([]age.Identity, error) {
	var out []age.Identity
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, usererr.Errorf("%s: %w", n.of("AgeIdentityFiles"), err)
		}
		ids, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			// The parser's message may quote the key; do not repeat it.
			return nil, usererr.Errorf("%s %s holds no valid age identity", n.of("AgeIdentityFiles"), p)
		}
		out = append(out, ids...)
	}
	return out, nil
}
