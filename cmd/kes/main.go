// Command kes is the OpenKES server and command-line client.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/openkes/openkes/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, cli.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
