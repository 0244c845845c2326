//go:build !linux

package dex

import "os/exec"

func setProcAttr(*exec.Cmd) {}
