package convert

import (
	"context"
	"os/exec"
	"testing"
)

// Test inputs come from internal/testkit (made by the real encoders, or
// written byte by byte where no encoder is at hand or the file must be
// hostile).

func newEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	for _, tool := range []string{"vips", "vipsheader", "ffmpeg", "ffprobe", "prlimit"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	var cfg Config
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return e
}
