package usererr

import (
	"errors"
	"fmt"
	"testing"
)

type fileErr struct{}

func (fileErr) Error() string { return "f.yaml:3: x: bad" }
func (fileErr) UserError()    {}

func TestIs(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"new", New("bad flag"), true},
		{"errorf wraps", Errorf("reading %s: %w", "x", base), true},
		{"wrapped user error", fmt.Errorf("ctx: %w", New("bad")), true},
		{"other marker type", fmt.Errorf("ctx: %w", fileErr{}), true},
		{"wrap", Wrap(base), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Is(tt.err); got != tt.want {
				t.Errorf("Is(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(Errorf("x: %w", base), base) {
		t.Error("Errorf lost the chain")
	}
	if Wrap(nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
	u := New("once")
	if Wrap(u) != u {
		t.Error("Wrap re-wrapped a user error")
	}
}
