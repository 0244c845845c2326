package dex

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill Dex when the thread that started it, and
// so the test binary, is gone: a test killed on timeout leaves no Dex behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
