//go:build !linux

package testkit

import "testing"

// SmallDisk skips the test: a small file system is mounted on Linux only.
func SmallDisk(t testing.TB, size int64) string {
	t.Skip("a full disk is simulated with a tmpfs mount, which needs Linux")
	return ""
}

// FillDisk is not reached where SmallDisk skips.
func FillDisk(t testing.TB, dir string) (free func()) { return func() {} }
