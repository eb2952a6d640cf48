package agentdb_test

import (
	"os/exec"
	"syscall"
)

// The server dies with the test binary, even when the tests crash.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
