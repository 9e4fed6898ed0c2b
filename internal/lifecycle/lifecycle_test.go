package lifecycle

import (
	"errors"
	"testing"
)

func TestOnce(t *testing.T) {
	var o Once
	if err := o.Start("part"); err != nil {
		t.Fatalf("first Start: %v", err)
	}
	err := o.Start("part")
	if !errors.Is(err, ErrRunTwice) || err.Error() != "part: Run called twice" {
		t.Fatalf("second Start: got %v, want part: Run called twice", err)
	}
}
