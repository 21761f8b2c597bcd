package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/peer-vpn/peer/netconf"
)

func cmdRoutes(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("routes", stderr)
	var nf nodeFlags
	nf.register(fs)
	goos := fs.String("os", runtime.GOOS, "target system: linux or darwin")
	down := fs.Bool("down", false, "print the teardown script instead")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *goos != "linux" && *goos != "darwin" {
		return usageError{fmt.Errorf("-os %q: want linux or darwin", *goos)}
	}
	node, err := nf.load()
	if err != nil {
		return err
	}
	p := plan(node, *goos)
	cmds, verb := p.RoutesUp(), "up"
	if *down {
		cmds, verb = p.RoutesDown(), "down"
	}
	header := fmt.Sprintf("routes %s for %s (node %s) from %s", verb, p.Iface, node.Self.Name, node.Mesh.File)
	_, err = io.WriteString(stdout, netconf.Script(header, cmds))
	return err
}
