// Command backup: dump MySQL and MongoDB to S3 and restore the newest good backup at the DR site.
package main

import (
	"github.com/slipwayci/slipway/internal/cli"
)

func main() {
	cli.Main(cli.New(cli.App{
		Name:   "backup",
		Usage:  "dump MySQL and MongoDB to S3 and restore the newest good backup at the DR site",
		Action: cli.NotBuilt("backup", 7),
	}))
}
