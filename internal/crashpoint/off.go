//go:build !slipway_crashpoints

package crashpoint

// Enabled reports whether this binary was built with the crash hook.
const Enabled = false

// Hit marks the named step; in the product build it does nothing.
func Hit(string) {}
