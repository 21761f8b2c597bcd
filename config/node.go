package config

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/netconf"
)

// maxKeyFileSize bounds how much of a key file is read; a key is 44 bytes.
const maxKeyFileSize = 4096

// resolveTimeout bounds each endpoint lookup by the default resolver.
const resolveTimeout = 10 * time.Second

// NodeOptions are this host's settings that override or complete the mesh
// file, usually from command-line flags.
type NodeOptions struct {
	// KeyFile overrides private_key_file; a relative path is relative to the
	// current directory.
	KeyFile string
	// Iface overrides interface.name.
	Iface string
	// ListenPort overrides the port of this node's endpoint; 0 means the
	// endpoint's port, or DefaultListenPort if this node has no endpoint.
	ListenPort int
	// Exit overrides the use_exit of this node's entry: the name of an
	// exit peer, ExitNone for none, "" to keep what the file says.
	Exit string
	// Resolve looks up the addresses of an endpoint's DNS name; nil uses
	// net.DefaultResolver.
	Resolve func(host string) ([]netip.Addr, error)
}

// ExitNone is the NodeOptions.Exit (the -exit flag) that turns the mesh
// file's use_exit off.
const ExitNone = "none"

// DefaultRoutes are what an exit offers the nodes that use it: every
// destination, of both families. A node using an exit routes IPv6 into the
// tunnel even when the exit has no IPv6 uplink, so that nothing leaks
// around an IPv4-only tunnel; the exit answers unreachable.
var DefaultRoutes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// Remote is another peer as this node sees it.
type Remote struct {
	Peer *Peer // its entry in Mesh.Peers
	// Endpoint is the resolved endpoint, the zero AddrPort if it has none
	// (then it can only be reached after it contacts this node).
	Endpoint netip.AddrPort
	// Preshared is the preshared key of this pair, zero if none.
	Preshared keys.Preshared
	// Prefixes are the prefixes routed to it (Peer.Prefixes).
	Prefixes []netip.Prefix
}

// Node is the mesh as seen from one of its peers.
type Node struct {
	Mesh       *Mesh
	Self       *Peer // this node's entry in Mesh.Peers
	Private    keys.Private
	ListenPort int       // UDP port to listen on
	Interface  Interface // Mesh.Interface with overrides applied
	Remotes    []Remote  // every other peer, in file order
	// Exit is the remote this node sends every destination outside the
	// mesh through (its Prefixes end with DefaultRoutes), nil for none.
	Exit *Remote
}

// Forwards reports whether this node forwards between its tunnel and other
// interfaces: it is an exit, or it has subnets routed to it.
func (n *Node) Forwards() bool { return n.Self.Exit || len(n.Self.Subnets) > 0 }

// Node computes this host's view of the mesh. It reads the private key
// (opts.KeyFile, else private_key_file), finds the peer with the matching
// public key, applies the overrides in opts, reads the preshared keys and
// resolves the endpoints of the other peers.
//
// Key files must not be readable or writable by group or others. Problems
// are returned as *Error naming the file at fault (and, for an endpoint that
// does not resolve, the peer's line in the mesh file); a bad opts.Iface or
// opts.ListenPort gives a plain error.
//
// The preshared key of a pair of peers is read from the preshared_key_file
// of whichever of the two comes first in the file and has one, so that both
// ends of a pair pick the same file. That file must hold the same key on
// both hosts.
func (m *Mesh) Node(opts NodeOptions) (*Node, error) {
	iface := m.Interface
	if opts.Iface != "" {
		if err := netconf.CheckIfaceName(opts.Iface); err != nil {
			return nil, fmt.Errorf("-iface: %w", err)
		}
		iface.Name = opts.Iface
	}
	// The one check of -listen (peer passes it through): 0 is "not given",
	// as in NodeOptions.
	if opts.ListenPort < 0 || opts.ListenPort > math.MaxUint16 {
		return nil, fmt.Errorf("-listen: port %d is out of range; use 1 to %d", opts.ListenPort, math.MaxUint16)
	}

	keyFile := opts.KeyFile
	if keyFile == "" {
		keyFile = m.PrivateKeyFile
	}
	if keyFile == "" {
		return nil, &Error{File: m.File, Msg: "no private key file: set private_key_file or pass -key"}
	}
	text, err := readSecret(keyFile)
	if err != nil {
		return nil, &Error{File: keyFile, Msg: "private key file: " + bareError(err), Err: err}
	}
	priv, err := keys.ParsePrivate(text)
	if err != nil {
		return nil, &Error{File: keyFile, Msg: "private key file: " + err.Error(), Err: err}
	}
	pub := priv.Public()
	selfIdx := slices.IndexFunc(m.Peers, func(p Peer) bool { return p.PublicKey == pub })
	if selfIdx < 0 {
		return nil, &Error{File: m.File, Msg: fmt.Sprintf(
			"no peer has public_key %s, the public key of the private key in %s; add this node to peers or use its own key file",
			pub, keyFile)}
	}
	n := &Node{Mesh: m, Self: &m.Peers[selfIdx], Private: priv, Interface: iface, ListenPort: opts.ListenPort}
	if n.ListenPort == 0 {
		n.ListenPort = DefaultListenPort
		if n.Self.Endpoint != "" {
			_, port, _, err := splitEndpoint(n.Self.Endpoint)
			if err != nil {
				return nil, &Error{File: m.File, Line: n.Self.Line, Msg: fmt.Sprintf("peer %q: endpoint %q: %v", n.Self.Name, n.Self.Endpoint, err)}
			}
			n.ListenPort = int(port)
		}
	}

	resolve := opts.Resolve
	if resolve == nil {
		resolve = defaultResolve
	}
	psks := map[string]keys.Preshared{}
	for i := range m.Peers {
		if i == selfIdx {
			continue
		}
		peer := &m.Peers[i]
		r := Remote{Peer: peer, Prefixes: peer.Prefixes()}
		if peer.Endpoint != "" {
			if r.Endpoint, err = endpoint(peer.Endpoint, resolve); err != nil {
				return nil, &Error{File: m.File, Line: peer.Line, Msg: fmt.Sprintf("peer %q: endpoint %q: %v", peer.Name, peer.Endpoint, err), Err: err}
			}
		}
		first, second := n.Self, peer
		if i < selfIdx {
			first, second = peer, n.Self
		}
		file := first.PresharedKeyFile
		if file == "" {
			file = second.PresharedKeyFile
		}
		if file != "" {
			psk, ok := psks[file]
			if !ok {
				if psk, err = readPreshared(file); err != nil {
					return nil, &Error{File: file, Msg: fmt.Sprintf("preshared key file (for peer %q, line %d of %s): %s", peer.Name, peer.Line, m.File, bareError(err)), Err: err}
				}
				psks[file] = psk
			}
			r.Preshared = psk
		}
		n.Remotes = append(n.Remotes, r)
	}
	// Parse has checked the file's use_exit; only -exit can still be wrong.
	exit := n.Self.UseExit
	if opts.Exit != "" {
		exit = opts.Exit
	}
	switch {
	case exit == "" || exit == ExitNone:
	case exit == n.Self.Name:
		return nil, fmt.Errorf("-exit %s: that is this node; a node cannot be its own exit", exit)
	case n.Self.Exit:
		return nil, fmt.Errorf("-exit %s: this node is an exit itself; it sends the world out through its own uplink", exit)
	default:
		if err := m.checkExit(exit); err != nil {
			return nil, fmt.Errorf("-exit %s: %w", exit, err)
		}
	}
	for i := range n.Remotes {
		if r := &n.Remotes[i]; exit != ExitNone && r.Peer.Name == exit {
			r.Prefixes = append(r.Prefixes, DefaultRoutes...)
			n.Exit = r
		}
	}
	return n, nil
}

// checkExit says why peer name cannot be an exit of this mesh, if it
// cannot; Parse has checked the use_exit fields the same way.
func (m *Mesh) checkExit(name string) error {
	i := slices.IndexFunc(m.Peers, func(p Peer) bool { return p.Name == name })
	switch {
	case i < 0:
		return fmt.Errorf("no peer of %s is named %q (want an exit peer, or %s)", m.File, name, ExitNone)
	case !m.Peers[i].Exit:
		return fmt.Errorf("peer %q (%s:%d) is not an exit; give it exit: true", name, m.File, m.Peers[i].Line)
	}
	return nil
}

// Routes returns every remote prefix this node routes into the tunnel (for
// route scripts), sorted by address then length, without duplicates. The
// DefaultRoutes of an exit are not among them: they take policy routing,
// not a route in the main table (see Exit).
func (n *Node) Routes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range n.Remotes {
		for _, p := range r.Prefixes {
			if p.Bits() != 0 {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// readSecret reads a small key file that only its owner may read or write,
// owned by root or this process's user, and returns its content without
// surrounding white space.
func readSecret(path string) (string, error) {
	f, err := openTrusted(path, unsafeSecretBits)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := readLimited(f, maxKeyFileSize, "a key file holds one base64 key")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func readPreshared(path string) (keys.Preshared, error) {
	text, err := readSecret(path)
	if err != nil {
		return keys.Preshared{}, err
	}
	return keys.ParsePreshared(text)
}

// endpoint resolves a checked host:port.
func endpoint(s string, resolve func(string) ([]netip.Addr, error)) (netip.AddrPort, error) {
	host, port, addr, err := splitEndpoint(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if addr.IsValid() {
		return netip.AddrPortFrom(addr, port), nil
	}
	addrs, err := resolve(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("host %q does not resolve: %w", host, err)
	}
	for _, a := range addrs {
		if a = a.Unmap(); a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() {
			return netip.AddrPortFrom(a, port), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("host %q does not resolve to a usable address", host)
}

func defaultResolve(host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
