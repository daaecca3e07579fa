// Package version holds the build's version, set at link time with
// -ldflags "-X github.com/slipwayci/slipway/internal/version.Version=...".
package version

// Version is the release of this build; "dev" when built from a work tree.
var Version = "dev"

// UserAgent is the User-Agent header of a binary: "slipway-<name>/<version>".
func UserAgent(name string) string { return "slipway-" + name + "/" + Version }
