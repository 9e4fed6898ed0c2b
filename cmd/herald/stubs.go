package main

import (
	"context"
	"fmt"
	"io"
)



func runLoadtest(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	return fmt.Errorf("herald loadtest: not built yet")
}
