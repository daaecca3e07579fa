// Package crashpoint lets the crash tests kill a stage at a named step. The
// product build contains no hook: Hit does nothing unless the binary is built
// with -tags slipway_crashpoints.
package crashpoint

// EnvPoint names the step to die at, as NAME or NAME:N (the Nth time the step
// is reached, from 1). EnvLog names a file to which every step reached is
// appended, one name a line, so a test can list the steps of a clean run.
const (
	EnvPoint = "SLIPWAY_CRASHPOINT"
	EnvLog   = "SLIPWAY_CRASHPOINT_LOG"
)
