//go:build !unix

package main

import "time"

// processCPU is not known here: the idle collector never runs.
func processCPU() (time.Duration, bool) { return 0, false }
