//go:build !linux

package backup

import (
	"os"
	"syscall"
)

func growPipe(*os.File) {}

func childAttr() *syscall.SysProcAttr { return nil }
