//go:build !linux

package loadtest

import "errors"

const pinAvailable = false

func setAffinity(int, []int) error { return errors.New("loadtest: pinning needs Linux") }

func machineCPUs() []int { return nil }
