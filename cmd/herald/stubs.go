package main

import (
	"context"
	"fmt"
	"io"
)


func runPublish(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	return fmt.Errorf("herald publish: not built yet")
}

func runLoadtest(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	return fmt.Errorf("herald loadtest: not built yet")
}
