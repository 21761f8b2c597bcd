package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// `peer help` is the manual page: packaging/ installs its text as the
// package's documentation, and the flag lists are the real flag sets'
// own (each command is asked for its -h), so they cannot drift from the
// code. testdata/help.golden holds the expected text.

// helpCommand is one subcommand as the manual describes it.
type helpCommand struct {
	synopsis string
	about    string
	// flags runs the command with -h, which prints its flag set's
	// defaults to stderr and touches nothing.
	flags func(stderr io.Writer) error
}

func helpCommands() []helpCommand {
	none := io.Discard
	h := []string{"-h"}
	return []helpCommand{
		{"peer -config FILE [flags]", "Run this node: find it in the mesh file by its private key, create the TUN\n" +
			"interface with its addresses, install the routes of the other peers' prefixes and\n" +
			"forward until SIGINT or SIGTERM, then remove what it set up.",
			func(e io.Writer) error { return cmdRun(h, e) }},
		{"peer check -config FILE [flags]", "Validate the mesh file (FILE:LINE errors) and show this node's view of it:\n" +
			"addresses, peers, routes. Without a private key, check the whole mesh.",
			func(e io.Writer) error { return cmdCheck(h, none, e) }},
		{"peer routes -config FILE [flags]", "Print the commands that configure this node's interface and routes.",
			func(e io.Writer) error { return cmdRoutes(h, none, e) }},
		{"peer status [-iface NAME | -socket PATH] [-json]", "Ask the running node for its peers, sessions, counters and drops.",
			func(e io.Writer) error { return cmdStatus(h, none, e) }},
		{"peer reload [-iface NAME | -socket PATH] [-json]", "Make the running node read its mesh file again and apply what changed\n" +
			"(as SIGHUP does); print what changed.",
			func(e io.Writer) error { return cmdReload(h, none, e) }},
		{"peer capture [-iface NAME | -socket PATH] [flags] -w FILE|-", "Attach to the running node and stream its traffic as pcapng (the format of\n" +
			"-pcap) to FILE or stdout, until SIGINT or -c packets; no capture flag needed at start.",
			func(e io.Writer) error { return cmdCapture(h, none, e) }},
		{"peer decode FILE", "Print a pcap or pcapng file one line per packet.",
			func(e io.Writer) error { return cmdDecode(h, none, e) }},
		{"peer genkey", "Print a new private key (the format of wg genkey).",
			func(e io.Writer) error { return cmdGenkey(h, none, e) }},
		{"peer pubkey < private.key", "Print the public key of the private key on stdin (as wg pubkey).",
			func(e io.Writer) error { return cmdPubkey(h, strings.NewReader(""), none, e) }},
		{"peer version", "Print the version, the commit it was built from, and the Go toolchain.",
			func(e io.Writer) error { return cmdVersion(h, none, e) }},
		{"peer help", "Print this manual.", nil},
	}
}

const helpHead = `NAME
    peer - symmetric WireGuard-compatible mesh VPN node

SYNOPSIS
    peer -config FILE [flags]
    peer COMMAND [flags]

DESCRIPTION
    Every host of the mesh runs the same binary with the same mesh file and
    finds itself in it by its private key. The tunnel speaks the WireGuard
    protocol, so a peer may also be stock WireGuard.

COMMANDS
`

const helpTail = `FILES
    /etc/peer/NAME.yaml
        The mesh file of the systemd unit peer@NAME.service.
    /run/peer/IFACE.sock
        The control socket of the node on IFACE (peer status, peer reload).
    /run/peer/IFACE.sysctl
        The forwarding settings as they were before the node changed them
        (an exit, or a node using one); restored when it stops.
    /lib/systemd/system/peer@.service
        The systemd template unit: systemctl enable --now peer@NAME.
    /usr/share/doc/peer/peers.example.yaml
        An example mesh file.

ENVIRONMENT
    NOTIFY_SOCKET
        Set by systemd for a Type=notify unit: the node sends READY=1 once its
        interface, addresses and routes are up, RELOADING=1 and READY=1 around
        a reload, and STOPPING=1 when it shuts down.

SIGNALS
    HUP     Reload the mesh file (as peer reload does).
    INT, TERM
            Stop: remove the routes, the exit's policy rules and nftables table,
            restore the sysctls and remove the interface, then exit.

EXIT STATUS
    0   Success.
    1   Failure while running (a system command, a socket, the device).
    2   Usage error: bad flags, an invalid mesh file, a refused reload.

SEE ALSO
    wg(8), wireguard-go(8), ip(8), systemd.service(5), sd_notify(3),
    /usr/share/doc/peer/README.md
`

// writeHelp writes the manual to w.
func writeHelp(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString(helpHead)
	for _, c := range helpCommands() {
		fmt.Fprintf(&b, "    %s\n", c.synopsis)
		for _, l := range strings.Split(c.about, "\n") {
			fmt.Fprintf(&b, "        %s\n", l)
		}
		if c.flags != nil {
			var fl bytes.Buffer
			if err := c.flags(&fl); err != nil && !isHelp(err) {
				return fmt.Errorf("flags of %q: %w", c.synopsis, err)
			}
			// The first line is the flag package's "Usage of NAME:".
			_, defaults, _ := strings.Cut(fl.String(), "\n")
			for _, l := range strings.Split(strings.TrimRight(defaults, "\n"), "\n") {
				if l != "" {
					fmt.Fprintf(&b, "    %s\n", strings.ReplaceAll(l, "\t", "    "))
				}
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(helpTail)
	_, err := w.Write(b.Bytes())
	return err
}

func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
