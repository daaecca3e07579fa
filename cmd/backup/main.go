// Command backup streams MySQL and MongoDB dumps to S3 and restores the
// newest good backup at the DR site (see docs/backup.md).
package main

import (
	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(backup.App())
}
