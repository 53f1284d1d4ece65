//go:build !linux

package etcdtest

import "os/exec"

// DieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's: tests stop their children themselves.
func DieWithParent(*exec.Cmd) {}
