package etcdtest

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel kill cmd's process when the test binary
// that starts it exits, however it exits: a child never outlives a test.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
