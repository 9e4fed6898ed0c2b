// Command herald is the Herald gateway: `herald serve` runs the broker, the
// HTTP API and the processor; `herald localaws`, `herald publish`,
// `herald loadtest` and `herald version` are its tools. main only wires
// packages together; the logic lives in them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	reexecForStacks()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "herald:", err)
		}
		// Container health checks read 1 as unhealthy (2 is reserved there).
		if errors.Is(err, errNotReady) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

const usage = `herald — real-time notification gateway

Usage:
  herald serve     [flags]   run the gateway (broker, web, processor roles)
  herald localaws  [flags]   run only the local S3 + SQS endpoint
  herald publish   [flags]   publish one event through POST /v1/events
  herald healthcheck [flags] exit 0 when the gateway's /readyz says ready
  herald loadtest  [flags]   open many browser sessions and measure delivery
  herald version             print the version

Run "herald COMMAND -h" for a command's flags.
`

// run is the whole program, callable from tests: args without the program
// name, output to stdout, environment through getenv.
func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, getenv)
	case "localaws":
		return runLocalAWS(ctx, args[1:], stdout, getenv)
	case "publish":
		return runPublish(ctx, args[1:], stdout, getenv)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stdout, getenv)
	case "loadtest":
		return runLoadtest(ctx, args[1:], stdout, getenv)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "herald", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stdout, "unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}
