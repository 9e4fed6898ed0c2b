package convert

import (
	"context"
	"testing"

	"github.com/heraldgw/herald/internal/testkit"
)

// Test inputs come from internal/testkit (made by the real encoders, or
// written byte by byte where no encoder is at hand or the file must be
// hostile).

func newEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	testkit.RequireTools(t, "vips", "vipsheader", "ffmpeg", "ffprobe", "prlimit")
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
