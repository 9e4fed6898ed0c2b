package convert

import (
	"fmt"
	"os"
)

// NewWorkDir creates a private directory for one job under parent (the
// system temp dir when empty) and returns it with a cleanup function that
// removes it and everything in it. Callers defer the cleanup right away, so
// the directory goes on success, failure and panic alike:
//
//	dir, cleanup, err := convert.NewWorkDir("")
//	if err != nil { ... }
//	defer cleanup()
//
// Converter processes get this directory as TMPDIR, so their own scratch
// files are removed with it.
func NewWorkDir(parent string) (dir string, cleanup func() error, err error) {
	dir, err = os.MkdirTemp(parent, "herald-job-*")
	if err != nil {
		return "", nil, fmt.Errorf("create job work dir: %w", err)
	}
	return dir, func() error {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove job work dir %s: %w", dir, err)
		}
		return nil
	}, nil
}
