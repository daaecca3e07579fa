// Package usererr marks errors the user must fix: bad input in a flag, a file
// or a value. Any package may return one; internal/cli maps it to exit code 2
// and prints it as one clean line. It imports nothing of the project, so logic
// packages use it without depending on the CLI.
package usererr

import (
	"errors"
	"fmt"
)

// Error marks its wrapped error as the user's to fix.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// UserError marks *Error for Is; other types (config.Error) implement it too.
func (e *Error) UserError() {}

// Marker is implemented by every error type that is the user's to fix.
type Marker interface {
	error
	UserError()
}

// New returns a user error with the message msg.
func New(msg string) error { return &Error{Err: errors.New(msg)} }

// Errorf returns a user error with a formatted message; %w wraps as usual.
func Errorf(format string, args ...any) error {
	return &Error{Err: fmt.Errorf(format, args...)}
}

// Wrap marks err as a user error; nil stays nil and a user error stays as it is.
func Wrap(err error) error {
	if err == nil || Is(err) {
		return err
	}
	return &Error{Err: err}
}

// Is reports whether err is, or wraps, a user error.
func Is(err error) bool {
	var m Marker
	return errors.As(err, &m)
}
