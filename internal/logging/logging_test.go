package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "s3cr3t-value-xyz"
	s := Secret(value)
	type config struct {
		User     string
		Password Secret
	}
	c := config{User: "admin", Password: s}
	jsonOut, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logger := New(&buf, "json", true)
	logger.Info("connecting", "password", s, "config", c)
	text := New(&buf, "text", false)
	text.Info("connecting", "cfg", c)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", c),
		"%#v":  fmt.Sprintf("%#v", c),
		"%s":   fmt.Sprintf("%s", s),
		"%q":   fmt.Sprintf("%q", s),
		"json": string(jsonOut),
		"slog": buf.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) {
			t.Errorf("%s output reveals the secret: %s", name, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s output lacks the redaction marker: %s", name, out)
		}
	}
	if s.Reveal() != value {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
}

func TestScrubRegistered(t *testing.T) {
	Register("tok-1234567890", "ab") // too short to register: would scrub every "ab"
	var buf bytes.Buffer
	New(&buf, "text", false).Info("server said", "body", "invalid token tok-1234567890 for ab")
	out := buf.String()
	if strings.Contains(out, "tok-1234567890") {
		t.Errorf("registered secret printed: %s", out)
	}
	if !strings.Contains(out, "for ab") {
		t.Errorf("short value was scrubbed: %s", out)
	}
	if got := Scrub("x tok-1234567890 y"); got != "x [redacted] y" {
		t.Errorf("Scrub() = %q", got)
	}
}
