//go:build !linux

package agentdb_test

import "os/exec"

func dieWithParent(cmd *exec.Cmd) {}
