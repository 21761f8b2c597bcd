package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/peer-vpn/peer/control"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
)

func cmdRoutes(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("routes", stderr)
	var nf nodeFlags
	nf.register(fs)
	goos := fs.String("os", runtime.GOOS, "target system: linux or darwin")
	down := fs.Bool("down", false, "print the teardown script instead")
	socket := fs.String("socket", "", "control socket of the node, beside which it saved the sysctls -down restores (default /run/peer/<iface>.sock, for users but root\n$XDG_RUNTIME_DIR/peer/<iface>.sock)")
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
	if node.Interface.Driver == tundev.DriverNetstack {
		header := fmt.Sprintf("nothing to do for node %s from %s: driver netstack changes nothing on the host", node.Self.Name, node.Mesh.File)
		_, err = io.WriteString(stdout, netconf.Script(header, nil))
		return err
	}
	p := plan(node, *goos)
	if err := p.Validate(); err != nil {
		return usageError{fmt.Errorf("%s: %w", node.Mesh.File, err)}
	}
	cmds, verb := p.NetworkUp(), "up"
	note := ""
	if *down {
		verb = "down"
		path := *socket
		if path == "" {
			path = control.SocketPath(p.Iface)
		}
		state := sysctlStatePath(path)
		before, err := loadSysctlState(state)
		if err != nil {
			return err
		}
		switch {
		case len(p.Sysctls()) == 0:
		case before == nil:
			note = fmt.Sprintf("\nno saved sysctls at %s (no node of this interface is running or crashed):\nthe forwarding settings are left as they are", state)
		default:
			p.SysctlsBefore = before
			note = fmt.Sprintf("\nsysctls restored to the values saved in %s, which then goes", state)
		}
		cmds = p.NetworkDown()
		if p.SysctlsBefore != nil {
			// Restored: a node started later must not take these for
			// the values of a crash.
			cmds = append(cmds, []string{"rm", "-f", state})
		}
	}
	header := fmt.Sprintf("routes %s for %s (node %s) from %s%s", verb, p.Iface, node.Self.Name, node.Mesh.File, note)
	_, err = io.WriteString(stdout, netconf.Script(header, cmds))
	return err
}
