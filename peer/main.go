// Command peer is the symmetric mesh VPN node: every host runs the same
// binary with the same mesh file, and finds itself in it by its private key.
//
//	peer -config peers.yaml            run this node
//	peer check -config peers.yaml      validate and show what this node would do
//	peer routes -config peers.yaml     print the route script of this node
//	peer status [-iface NAME] [-json]  ask the running node for its state
//	peer reload [-iface NAME] [-json]  make the running node apply its changed mesh file
//	peer capture [-iface NAME] -w FILE|-   stream the running node's packets as pcapng
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
	var err error
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "":
		err = cmdRun(args, stderr)
	case "check":
		err = cmdCheck(args, stdout, stderr)
	case "routes":
		err = cmdRoutes(args, stdout, stderr)
	case "status":
		err = cmdStatus(args, stdout, stderr)
	case "reload":
		err = cmdReload(args, stdout, stderr)
	case "capture":
		err = cmdCapture(args, stdout, stderr)
	case "decode":
		err = cmdDecode(args, stdout, stderr)
	case "genkey":
		err = cmdGenkey(args, stdout, stderr)
	case "pubkey":
		err = cmdPubkey(args, stdin, stdout, stderr)
	case "version":
		err = cmdVersion(args, stdout, stderr)
	case "help":
		err = writeHelp(stdout)
	default:
		fmt.Fprintf(stderr, "peer: unknown command %q\n", cmd)
		usage(stderr)
		return exitUsage
	}
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

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  peer -config FILE [-key FILE] [-iface NAME] [-listen PORT] [-socket PATH] [-no-routes]
       [-wg-socket PATH|none] [-driver auto|water|offload] [-watch] [-v] [-log-format text|json]
       [-metrics ADDR] [-log-packets] [-pcap FILE] [-pcap-outer] [-pcap-keys]
       [-pcap-max-size BYTES] [-pcap-max-files N]
  peer check -config FILE [-key FILE] [-iface NAME] [-listen PORT]
  peer routes -config FILE [-key FILE] [-iface NAME] [-os linux|darwin] [-down]
  peer status [-iface NAME | -socket PATH] [-json]
  peer reload [-iface NAME | -socket PATH] [-json]
  peer capture [-iface NAME | -socket PATH] [-peer NAME] [-outer] [-keys] [-c COUNT] -w FILE|-
  peer decode FILE
  peer genkey
  peer pubkey < private.key
  peer version
  peer help                  (the manual: every command, its flags, files, signals)

-metrics ADDR (or metrics: in the mesh file) serves Prometheus metrics at http://ADDR/metrics.
ADDR is HOST:PORT with an IP address: 127.0.0.1:9586 for this host only, or an address of it;
every interface only when written out (0.0.0.0:9586, [::]:9586), never by leaving the host off
(":9586" is refused).
`)
}

// newFlagSet returns a flag set whose parse errors are usage errors.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
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
