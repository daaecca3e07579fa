package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScanTree finds a secret in any file, also across the boundary of
// two chunks, and skips what skip names.
func TestScanTree(t *testing.T) {
	dir := t.TempDir()
	secret := "scan-secret-0123456789"
	// The first chunk is 1 MiB plus the longest value: end it 5 bytes in.
	big := bytes.Repeat([]byte("a"), 1<<20+len(secret)-5)
	write(t, dir, "big.bin", append(big, []byte(secret+"tail")...))
	if err := os.MkdirAll(filepath.Join(dir, "logs", "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "logs/clean.log", []byte("nothing here "+secret[:10]))
	write(t, dir, "logs/job.log", []byte("token="+secret+"\n"))
	write(t, dir, "logs/private/skipped", []byte(secret))
	write(t, dir, "input.yaml", []byte(secret))
	hits, err := ScanTree(dir, []Secret{{"s", secret}}, func(rel string) bool { return rel == "input.yaml" || rel == "logs/private" })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hits {
		rel, _ := filepath.Rel(dir, h.Path)
		got = append(got, rel+" "+h.Secret)
	}
	if diff := cmp.Diff([]string{"big.bin s", "logs/job.log s"}, got); diff != "" {
		t.Errorf("hits (-want +got):\n%s", diff)
	}
}
