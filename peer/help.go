package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// One table, commands(), says what each subcommand is: run dispatches
// on it, a command's -h prints its synopsis, its description and its own
// flag set's defaults, and `peer help` (the manual page: packaging/
// installs its text as the package's documentation) is every command's
// -h in turn. So no flag list is written by hand, and none can drift
// from the code. testdata/help.golden and testdata/usage.golden hold the
// expected texts.

// command is one subcommand: how it runs and how its -h and the manual
// describe it.
type command struct {
	// name is the word after peer ("" runs the node) and the name of the
	// command's flag set ("peer" for the node's).
	name     string
	synopsis string
	about    string
	run      func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"", "peer -config FILE [flags]", "Run this node: find it in the mesh file by its private key, create the TUN\n" +
			"interface with its addresses, install the routes of the other peers' prefixes and\n" +
			"forward until SIGINT or SIGTERM, then remove what it set up.",
			func(args []string, _ io.Reader, _, stderr io.Writer) error { return cmdRun(args, stderr) }},
		{"check", "peer check -config FILE [flags]", "Validate the mesh file (FILE:LINE errors) and show this node's view of it:\n" +
			"addresses, peers, relays, routes. Without a private key, check the whole mesh.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdCheck(args, stdout, stderr)
			}},
		{"routes", "peer routes -config FILE [flags]", "Print the commands that configure this node's interface and routes.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdRoutes(args, stdout, stderr)
			}},
		{"status", "peer status [-iface NAME | -socket PATH] [-json]", "Ask the running node for its peers, the path to each (direct or through a relay),\n" +
			"sessions, counters and drops, what it forwarded if it serves as a relay, how its last reload\n" +
			"ended and, for a mesh in etcd, the revision it runs and whether etcd answers.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdStatus(args, stdout, stderr)
			}},
		{"reload", "peer reload [-iface NAME | -socket PATH] [-json]", "Make the running node read its mesh file again and apply what changed\n" +
			"(as SIGHUP does); print what changed.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdReload(args, stdout, stderr)
			}},
		{"capture", "peer capture [-iface NAME | -socket PATH] [flags] -w FILE|-", "Attach to the running node and stream its traffic as pcapng (the format of\n" +
			"-pcap) to FILE or stdout, until SIGINT or -c packets; no capture flag needed at start.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdCapture(args, stdout, stderr)
			}},
		{"mesh push", "peer mesh push -config FILE -to URL [-if-revision N] [-sign KEYFILE] [flags]", "Check the mesh file in full (FILE:LINE errors, as peer check) and write it to etcd\n" +
			"in one transaction; print the new revision and what changed. -if-revision N\n" +
			"refuses the push (exit 1) if the mesh changed since revision N. -sign KEYFILE\n" +
			"signs it (Ed25519) for nodes started with -trust.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdMeshPush(args, stdout, stderr)
			}},
		{"mesh pull", "peer mesh pull -from URL [flags]", "Print the mesh stored in etcd as a mesh file (peers by name), its revision and\n" +
			"who signed it in a leading comment.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdMeshPull(args, stdout, stderr)
			}},
		{"mesh diff", "peer mesh diff -config FILE -to URL [flags]", "Show what peer mesh push would change in etcd, key by key, without writing.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdMeshDiff(args, stdout, stderr)
			}},
		{"mesh signkey", "peer mesh signkey -out FILE | -pub FILE", "Make an Ed25519 key to sign meshes with (peer mesh push -sign) and print its\n" +
			"public key, or print the public key of one, for trusted_signers.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdMeshSignkey(args, stdout, stderr)
			}},
		{"decode", "peer decode FILE", "Print a pcap or pcapng file one line per packet.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdDecode(args, stdout, stderr)
			}},
		{"genkey", "peer genkey", "Print a new private key (the format of wg genkey).",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdGenkey(args, stdout, stderr)
			}},
		{"pubkey", "peer pubkey < private.key", "Print the public key of the private key on stdin (as wg pubkey).", cmdPubkey},
		{"version", "peer version", "Print the version, the commit it was built from, and the Go toolchain.",
			func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
				return cmdVersion(args, stdout, stderr)
			}},
		// It has no flag set: `peer help -h` prints the manual too.
		{"help", "peer help", "Print this manual.",
			func(_ []string, _ io.Reader, stdout, _ io.Writer) error { return writeHelp(stdout) }},
	}
}

// lookupCommand returns the command named name (run's word after peer,
// or its flag set's name).
func lookupCommand(name string) (command, bool) {
	if name == "peer" {
		name = ""
	}
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// usageHead is the start of a command's -h: its synopsis and what it does.
func usageHead(c command) string {
	return "usage: " + c.synopsis + "\n\n" + c.about + "\n"
}

// flagsHead separates a command's description from its flags in its -h.
const flagsHead = "\nflags:\n"

// printUsage is the Usage of every flag set (see newFlagSet): what the
// command's -h prints, and what a bad flag is answered with.
func printUsage(fs *flag.FlagSet) {
	w := fs.Output()
	c, ok := lookupCommand(fs.Name())
	if !ok {
		c = command{synopsis: "peer " + fs.Name() + " [flags]"}
	}
	io.WriteString(w, usageHead(c))
	some := false
	fs.VisitAll(func(*flag.Flag) { some = true })
	if some {
		io.WriteString(w, flagsHead)
		fs.PrintDefaults()
	}
}

// writeUsage writes the short usage run answers an unknown command with.
func writeUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %s\n", c.synopsis)
	}
	b.WriteString("\n`peer COMMAND -h` lists a command's flags; `peer help` is the manual\n" +
		"(every command, its flags, files, signals).\n")
	io.WriteString(w, b.String())
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
        For a user other than root: $XDG_RUNTIME_DIR/peer/IFACE.sock.
    /run/peer/IFACE.sysctl
        The forwarding settings as they were before the node changed them
        (an exit, or a node using one); restored when it stops.
    /lib/systemd/system/peer@.service
        The systemd template unit: systemctl enable --now peer@NAME.
    /usr/share/doc/peer/peers.example.yaml
        An example mesh file.

USERSPACE MODE
    With -driver netstack (interface.driver: netstack) the node needs no root
    and no /dev/net/tun: its tunnel addresses live in a TCP/IP stack inside
    the process (gVisor's), which answers pings and the ports of -expose.
    Programs on the host reach the mesh through -socks5, -http-proxy and
    -forward, which resolve peer names to tunnel addresses. Such a node
    changes nothing on the host, so it can neither route subnets nor serve
    as an exit; it can use one.

RELAYS
    A peer with relay: true in the mesh file (it must have an endpoint) is a
    relay: peers that cannot reach each other directly, a peer with no
    endpoint behind a NAT say, send their datagrams through it, still
    encrypted end to end, and it introduces them to each other so that they
    can try a direct path, over their LAN when they share one. A node whose
    own entry says relay: true serves as one; a reload turns that on or off.
    peer status shows each peer's path ("direct ADDR:PORT" or "via RELAY").

ENVIRONMENT
    ETCD_USERNAME, ETCD_PASSWORD
        The user and password peer mesh push, pull and diff give etcd.
    XDG_RUNTIME_DIR
        Where a user other than root keeps the control socket (see FILES).
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
    1   Failure while running (a system command, a socket, the device, etcd),
        or a mesh push refused by -if-revision.
    2   Usage error: bad flags, an invalid mesh file, a refused reload.

SEE ALSO
    wg(8), wireguard-go(8), ip(8), systemd.service(5), sd_notify(3),
    /usr/share/doc/peer/README.md
`

// writeHelp writes the manual to w: each command's section is its -h.
func writeHelp(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString(helpHead)
	for _, c := range commands() {
		fmt.Fprintf(&b, "    %s\n", c.synopsis)
		for _, l := range strings.Split(c.about, "\n") {
			fmt.Fprintf(&b, "        %s\n", l)
		}
		// help has no flag set, and asking it for -h would recurse.
		if c.name != "help" {
			// -h prints the flag set's usage to stderr and touches nothing.
			var h bytes.Buffer
			if err := c.run([]string{"-h"}, strings.NewReader(""), io.Discard, &h); err != nil && !isHelp(err) {
				return fmt.Errorf("-h of %q: %w", c.synopsis, err)
			}
			rest, ok := strings.CutPrefix(h.String(), usageHead(c))
			if !ok {
				return fmt.Errorf("-h of %q does not start with its synopsis: %q", c.synopsis, h.String())
			}
			defaults := strings.TrimPrefix(rest, flagsHead)
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
