// Command crashcmd reaches one crash step, "crashcmd.step": the test of
// testenv.CrashBinaries builds it with the hook and kills it there.
package main

import "github.com/slipwayci/slipway/internal/crashpoint"

func main() { crashpoint.Hit("crashcmd.step") }
