// Package logging sets up slipway's structured logs on stderr and keeps
// secrets out of them.
package logging

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// New returns a logger writing text or JSON records to w.
func New(w io.Writer, format string, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Discard is a logger that drops everything: the default for library code.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

const redacted = "[redacted]"

// Secret holds a sensitive string. Every way of printing it (fmt verbs, slog,
// JSON, YAML) yields "[redacted]"; Reveal returns the value for the one place
// that needs it (an HTTP header, a child process's environment).
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v hides it too.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter for every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON keeps secrets out of result files.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText keeps secrets out of YAML and other text encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Empty reports whether no secret was given.
func (s Secret) Empty() bool { return s == "" }

// secretAttrs are attribute keys whose values are always redacted.
var secretAttrs = []string{"password", "token", "secret", "authorization", "key"}

func redactAttr(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretAttrs {
		if strings.Contains(k, s) && a.Value.Kind() == slog.KindString && a.Value.String() != "" {
			return slog.String(a.Key, redacted)
		}
	}
	if a.Value.Kind() == slog.KindString {
		a.Value = slog.StringValue(Scrub(a.Value.String()))
	}
	return a
}

var (
	mu      sync.RWMutex
	known   []string
	minSize = 4
)

// Register records secret values that must never be printed, so Scrub can
// replace them wherever they turn up (a server echoing a token in an error).
func Register(values ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, v := range values {
		if len(v) >= minSize {
			known = append(known, v)
		}
	}
}

// Scrub replaces every registered secret in s with "[redacted]".
func Scrub(s string) string {
	mu.RLock()
	defer mu.RUnlock()
	for _, v := range known {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}
