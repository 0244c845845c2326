package redistest

import "syscall"

// procAttr puts the server in its own process group and has the kernel kill
// it if the test process dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
