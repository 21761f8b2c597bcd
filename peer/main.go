// Command peer is the symmetric mesh VPN node: every host runs the same
// binary with the same mesh file, and finds itself in it by its private key.
//
//	peer -config peers.yaml            run this node
//	peer check -config peers.yaml      validate and show what this node would do
//	peer routes -config peers.yaml     print the route script of this node
//	peer status [-iface NAME] [-json]  ask the running node for its state
//	peer reload [-iface NAME] [-json]  make the running node apply its changed mesh file
//	peer capture [-iface NAME] -w FILE|-   stream the running node's packets as pcapng
//	peer mesh push|pull|diff ...       keep the mesh in etcd (see peer mesh push -h)
//	peer decode FILE                   print a pcap/pcapng file one line per packet
//	peer genkey | peer pubkey          make keys (compatible with wg genkey/pubkey)
//	peer version                       print the version and commit
//	peer help                          print the manual
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// exitUsage is the status for bad command lines and bad configuration.
const exitUsage = 2

// usageError is a problem with what the user gave us (flags, config): exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a subcommand and maps its error to an exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
		// Two-word commands (mesh push) are one entry of the table.
		if cmd == "mesh" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			cmd, args = cmd+" "+args[0], args[1:]
		}
	}
	c, ok := lookupCommand(cmd)
	if !ok {
		fmt.Fprintf(stderr, "peer: unknown command %q\n", cmd)
		writeUsage(stderr)
		return exitUsage
	}
	err := c.run(args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "peer: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return 1
}

// newFlagSet returns a flag set whose parse errors are usage errors and
// whose -h is the command's synopsis, description and flags (printUsage).
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(fs) }
	return fs
}

// parseFlags parses args and refuses leftover arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}
