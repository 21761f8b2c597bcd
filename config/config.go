// Package config reads and checks a peer mesh file and computes one node's
// view of the mesh: which peer it is, its key, its listen port and, for every
// other peer, the endpoint, preshared key and prefixes routed to it.
//
// The mesh file is YAML (one document). It is decoded through yaml.Node so
// that every problem is reported with its line as "FILE:LINE: problem".
// Parse does all checks that need nothing but the file; Mesh.Node does those
// that need this host: reading the key files and resolving endpoint names.
// The package knows nothing about sockets or devices.
//
// Decisions that the file format leaves open:
//
//   - An address written without a length ("10.10.0.1") is taken as a single
//     host: /32 for IPv4, /128 for IPv6.
//   - An address must name a host of its network: the network address itself
//     (10.10.0.0/24) and, for IPv4, the broadcast address (10.10.0.255/24) are
//     refused, as are unspecified, loopback, multicast and IPv4-mapped IPv6
//     addresses.
//   - A subnet must be written in its masked form: 10.20.1.5/24 is refused
//     with a hint to write 10.20.1.0/24, because host bits there are usually a
//     typo for an address.
//   - address and subnets take either one value or a list.
//   - keepalive is a Go duration ("25s", "1m") or an integer number of
//     seconds; it must be whole seconds from 0 (off) to 65535s.
//   - Relative paths in the file (private_key_file, preshared_key_file,
//     capture.pcap) are relative to the mesh file's directory; Mesh holds them
//     already joined to it.
//   - Aliases (*name) may stand for plain values only; merge keys (<<) are
//     not supported.
//   - Parse reports every problem it finds (as an ErrorList), not only the
//     first.
//   - Prefixes of different peers may nest (10.20.0.0/16 beside
//     10.20.5.0/24: the longest match wins, as in the tunnel's table), but
//     the same prefix may not be routed to two peers. A default route
//     (0.0.0.0/0, ::/0) is never a subnet: a peer offers it with exit: true,
//     and only the nodes that say use_exit route through it.
//   - relay: true makes a peer a relay for the others: a peer with no
//     endpoint, or one that cannot be reached directly, is reached through
//     it. A relay must have an endpoint. A mesh may have several relays or
//     none; every peer may use every relay, and nothing else names them.
package config

import (
	"crypto/ed25519"
	"errors"
	"io/fs"
	"net/netip"
	"time"

	"github.com/peer-vpn/peer/keys"
)

// Defaults applied when the mesh file leaves a value out.
const (
	DefaultInterfaceName = "peer0"
	DefaultMTU           = 1420
	DefaultDriver        = "auto"
	DefaultListenPort    = 51820
)

// Limits checked by Parse. The MTU range and the driver names are the TUN
// device's (tundev.CheckMTU, tundev.Drivers), the interface-name rules
// netconf's (netconf.CheckIfaceName), which Parse asks, so that a mesh
// Parse accepts is one the node can bring up.
const (
	MaxPeerName  = 63                  // longest peer name
	MaxKeepalive = 65535 * time.Second // longest keepalive interval (16-bit seconds, as in wg)
	// MaxFileSize is the largest mesh file Load reads.
	MaxFileSize = 1 << 20
)

// LogLevels lists the accepted values of log_level, from the most verbose.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Interface is the local TUN device as the mesh file describes it.
type Interface struct {
	Name   string // device name, default "peer0"
	MTU    int    // default 1420
	Driver string // "auto" (default), "water" or "offload"
}

// Capture holds the optional packet-capture settings; command-line flags
// override them. There is no keys setting: embedding keys writes the node's
// private key into the capture, so only a command-line flag (given to one
// node, on purpose) can ask for it, never the mesh file shared by all nodes.
type Capture struct {
	Pcap       string // pcapng output path, "" for none
	Outer      bool   // also capture the encrypted UDP packets
	LogPackets bool   // log a line per packet
	MaxSize    int64  // bytes per file before rotating, 0 = unlimited
	MaxFiles   int    // rotated files kept, 0 = unlimited
}

// Peer is one list item of peers:.
type Peer struct {
	Name      string
	PublicKey keys.Public
	// Addresses are the tunnel interface addresses as written, with their
	// network (10.10.0.1/24); a bare address is /32 or /128.
	Addresses []netip.Prefix
	// Subnets are further prefixes routed to this peer, always masked.
	Subnets []netip.Prefix
	// Endpoint is host:port as written, "" if none. The host may be a DNS
	// name, resolved by Mesh.Node.
	Endpoint string
	// Keepalive is the persistent keepalive interval toward this peer, 0 = off.
	Keepalive time.Duration
	// PresharedKeyFile is the preshared key file path, "" if none; relative
	// paths are already joined to the mesh file's directory.
	PresharedKeyFile string
	// Exit is exit: true: this peer forwards traffic from the mesh to the
	// outside world, and offers 0.0.0.0/0 and ::/0 to the nodes that use it.
	Exit bool
	// UseExit is use_exit: the name of the exit peer this node sends every
	// destination outside the mesh through, "" for none. It matters only to
	// the node whose own entry it is; UseExitLine is its line.
	UseExit     string
	UseExitLine int
	// Relay is relay: true: this peer forwards the datagrams of the peers
	// that cannot reach each other directly (both behind NATs, say) and
	// introduces them to each other so that they may find a direct path.
	// Parse refuses a relay without an endpoint: the others must be able
	// to reach it. On this node's own entry it makes the node serve as a
	// relay.
	Relay bool
	// Line is the line of the list item in the mesh file.
	Line int
}

// Prefixes returns the prefixes routed to p: each address as /32 or /128,
// then the subnets.
func (p *Peer) Prefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(p.Addresses)+len(p.Subnets))
	for _, a := range p.Addresses {
		out = append(out, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
	}
	return append(out, p.Subnets...)
}

// Mesh is a parsed and checked mesh file.
type Mesh struct {
	File      string    // path the mesh was read from, used in errors
	Interface Interface // with defaults filled in
	// PrivateKeyFile is the private key path, "" if not set; relative paths
	// are already joined to the mesh file's directory.
	PrivateKeyFile string
	Capture        Capture // relative Pcap joined to the mesh file's directory
	// LogLevel is log_level: one of LogLevels, "" when not set (info).
	// The node's -v overrides it; a reload applies it.
	LogLevel string
	// Metrics is metrics: where the node serves Prometheus metrics
	// (HOST:PORT, see CheckMetricsAddr), "" for nowhere; MetricsLine is
	// its line. The node's -metrics overrides it.
	Metrics     string
	MetricsLine int
	// TrustedSigners is trusted_signers: the Ed25519 keys a node that
	// takes this file as its -trust anchor accepts a mesh from etcd signed
	// by (see meshstore's signatures); nil when not set.
	TrustedSigners []ed25519.PublicKey
	Peers          []Peer // in file order, never empty
}

// Load reads the mesh file at path and parses it with Parse. The file must
// be a regular file that only root or this process's user can change (see
// openTrusted): whoever can write it picks the peers and the capture path.
func Load(path string) (*Mesh, error) {
	f, err := openTrusted(path, unsafeWriteBits)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot use mesh file: " + bareError(err), Err: err}
	}
	defer f.Close()
	data, err := readLimited(f, MaxFileSize, "a mesh file is YAML text")
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read mesh file: " + bareError(err), Err: err}
	}
	return Parse(path, data)
}

// bareError returns the text of err without the path that a *fs.PathError
// repeats, since Error already names the file.
func bareError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
