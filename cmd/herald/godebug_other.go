//go:build !unix

package main

// reexecForStacks does nothing where exec(2) is not available.
func reexecForStacks() {}
