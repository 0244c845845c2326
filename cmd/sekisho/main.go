// Command sekisho is the one binary of sekisho: the control plane, the
// proxy, the authorization and rate-limit services, and the tools that
// validate, translate and inspect configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"translate":  {"print the xDS each Gateway gets from a folder of YAML", runTranslate},
	"validate":   {"check a folder of YAML and print every problem", runValidate},
	"status":     {"print the status conditions each object would get", runStatus},
	"controller": {"serve xDS for the Gateways in a folder of YAML, following its changes", runController},
	"run":        {"the embedded default: control plane and a proxy per Gateway in one process", runEmbedded},
	"proxy":      {"the data plane of one Gateway, programmed over ADS", runProxy},
	"authz":      {"the external authorization service (JWT, OIDC login, authorization rules)", runAuthz},
	"ratelimit":  {"the global rate-limit service (in memory, or Redis shared by replicas)", runRateLimit},
	"echo":       {"a demo backend that answers with what it received (JSON)", runEcho},
	"version":    {"print the version", runVersion},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks errors in how the command was called (exit code 2).
var errUsage = errors.New("usage")

// errFound marks a command that ran and found problems (exit code 1).
var errFound = errors.New("problems found")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sekisho: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "sekisho %s: %v\n", args[0], err)
		return 2
	case errors.Is(err, errFound):
		return 1
	default:
		fmt.Fprintf(stderr, "sekisho %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "sekisho: a mesh gateway and API edge driven by the Kubernetes Gateway API.")
	fmt.Fprintln(w, "\nUsage: sekisho COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sekisho COMMAND -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sekisho "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func newLogger(w io.Writer, level string, json bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sekisho %s\n", version)
	return nil
}
