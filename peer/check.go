package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	var nf nodeFlags
	nf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Without a key on this machine (a laptop, CI, the example file) the
	// mesh is still checked in full; only this node's view needs the key.
	if nf.key == "" && nf.config != "" {
		mesh, err := nf.loadMesh()
		if err != nil {
			return err
		}
		if _, err := os.Stat(mesh.PrivateKeyFile); mesh.PrivateKeyFile == "" || errors.Is(err, iofs.ErrNotExist) {
			printMesh(stdout, mesh)
			return nil
		}
		// The same mesh: etcd is read once.
		node, err := nf.nodeOf(mesh)
		if err != nil {
			return err
		}
		if err := checkNetstack(node); err != nil {
			return usageError{err}
		}
		printNode(stdout, node)
		return nil
	}
	node, err := nf.load()
	if err != nil {
		return err
	}
	if err := checkNetstack(node); err != nil {
		return usageError{err}
	}
	printNode(stdout, node)
	return nil
}

// printMesh describes a valid mesh file seen from no particular node.
func printMesh(w io.Writer, m *config.Mesh) {
	prefixes := 0
	for i := range m.Peers {
		prefixes += len(m.Peers[i].Prefixes())
	}
	fmt.Fprintf(w, "%s: valid: %d peers, %d routed prefixes\n", m.File, len(m.Peers), prefixes)
	where := m.PrivateKeyFile
	if where == "" {
		where = "(private_key_file not set)"
	}
	fmt.Fprintf(w, "no private key at %s: pass -key FILE to see one node's view\n", where)
	for i := range m.Peers {
		p := &m.Peers[i]
		var pfx []string
		for _, x := range p.Prefixes() {
			pfx = append(pfx, x.String())
		}
		ep := p.Endpoint
		if ep == "" {
			ep = "none"
		}
		fmt.Fprintf(w, "  %s  endpoint %s  routes %s", p.Name, ep, strings.Join(pfx, " "))
		if p.Relay {
			fmt.Fprint(w, "  relay")
		}
		fmt.Fprintln(w)
	}
}

// printNode describes what this node would do, without doing it.
func printNode(w io.Writer, n *config.Node) {
	fmt.Fprintf(w, "%s: valid\n", n.Mesh.File)
	fmt.Fprintf(w, "this node: %s (public key %s)\n", n.Self.Name, n.Self.PublicKey)
	fmt.Fprintf(w, "interface: %s, mtu %d, driver %s, listening on UDP port %d\n",
		n.Interface.Name, n.Interface.MTU, n.Interface.Driver, n.ListenPort)
	for _, a := range n.Self.Addresses {
		fmt.Fprintf(w, "address: %s\n", a)
	}
	for _, s := range n.Self.Subnets {
		fmt.Fprintf(w, "serves subnet: %s\n", s)
	}
	if n.Self.Exit {
		fmt.Fprintln(w, "serves as exit: forwards the traffic of the nodes that use it to the outside world (masquerade)")
	}
	if n.Exit != nil {
		fmt.Fprintf(w, "uses exit: %s (every destination outside the mesh goes through it)\n", n.Exit.Peer.Name)
	}
	if n.Self.Relay {
		fmt.Fprintln(w, "serves as relay: forwards between the peers that cannot reach each other directly and introduces them")
	}
	if relays := relayNames(n); len(relays) > 0 {
		fmt.Fprintf(w, "relays: %s (a peer this node cannot reach directly is reached through them)\n", strings.Join(relays, " "))
	}
	if n.Mesh.Metrics != "" {
		fmt.Fprintf(w, "metrics: http://%s/metrics\n", n.Mesh.Metrics)
	}
	fmt.Fprintf(w, "peers (%d):\n", len(n.Remotes))
	for _, r := range n.Remotes {
		ep := "none (waits for it to connect)"
		if r.Endpoint.IsValid() {
			ep = r.Endpoint.String()
		}
		var pfx []string
		for _, p := range r.Prefixes {
			pfx = append(pfx, p.String())
		}
		fmt.Fprintf(w, "  %s  endpoint %s  routes %s", r.Peer.Name, ep, strings.Join(pfx, " "))
		if r.Peer.Keepalive > 0 {
			fmt.Fprintf(w, "  keepalive %s", r.Peer.Keepalive)
		}
		if !r.Preshared.IsZero() {
			fmt.Fprint(w, "  preshared key")
		}
		if r.Peer.Relay {
			fmt.Fprint(w, "  relay")
		}
		fmt.Fprintln(w)
	}
	if n.Interface.Driver == tundev.DriverNetstack {
		fmt.Fprintln(w, "routes and policy: none (driver netstack: the tunnel addresses live in the process; nothing on the host changes)")
		return
	}
	fmt.Fprintln(w, "routes and policy (peer routes prints them as a script):")
	for _, cmd := range plan(n, runtime.GOOS).NetworkUp() {
		fmt.Fprintf(w, "  %s\n", netconf.Quote(cmd))
	}
}
