package main

import (
	"encoding/base64"
	"log/slog"
	"net/netip"
	"path/filepath"
	"syscall"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/control"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/tunnel"
	"github.com/peer-vpn/peer/uapi"
)

// A running node also answers wg(8): the WireGuard userspace API on
// /var/run/wireguard/<iface>.sock, where wg looks for userspace
// implementations, so that `wg show` and `wg showconf` work unchanged.
//
// The answer carries the private key, as wireguard-go's and the kernel's
// do: wg derives the interface's public key from it, `wg show` prints it as
// "(hidden)" and `wg showconf` prints it. The socket is mode 0600 in a
// directory only root can write (the rules of the control socket), so only
// who could read the key file anyway can ask; the kernel's netlink get
// needs CAP_NET_ADMIN for the same reason.
//
// A set is refused: the mesh file is the source of truth, and a change made
// with wg would be silently undone by the next reload or restart (and exist
// on one host only). wg prints only the errno, so the node logs why.

// wgSocketDir is where wg(8) looks for userspace interfaces.
const wgSocketDir = "/var/run/wireguard"

// wgSocketPath is the default wg socket of interface iface.
func wgSocketPath(iface string) string { return filepath.Join(wgSocketDir, iface+".sock") }

// wgSetErrno is the answer to every set: wg prints "Unable to modify
// interface: Operation not supported".
const wgSetErrno = syscall.EOPNOTSUPP

// serveWG listens on path and answers wg's requests with the live status
// of the device and the node as last (re)loaded, read afresh for each request, so
// the peer set of a reload shows at once. The returned func stops it.
func serveWG(path string, status func() tunnel.Status, current func() *config.Node, log *slog.Logger) (func(), error) {
	ln, err := control.ListenPrivate(path)
	if err != nil {
		return nil, wgSocketError{err}
	}
	h := uapi.Handler{
		Get: func() uapi.Device { return wgDevice(status(), current()) },
		Set: func(req uapi.Request) syscall.Errno { return refuseWGSet(log, current(), req) },
	}
	go func() {
		if err := uapi.Serve(ln, h); err != nil {
			log.Error("wg socket stopped", "socket", path, "err", err)
		}
	}()
	return func() { ln.Close() }, nil
}

// wgSocketError names the socket in ListenPrivate's errors ("wg socket ...").
type wgSocketError struct{ err error }

func (e wgSocketError) Error() string { return "wg " + e.err.Error() }
func (e wgSocketError) Unwrap() error { return e.err }

// refuseWGSet logs why a set was refused and returns its errno.
func refuseWGSet(log *slog.Logger, node *config.Node, req uapi.Request) syscall.Errno {
	log.Warn("wg set refused: the mesh file is the source of truth; edit it and run `peer reload`",
		"mesh", node.Mesh.File, "keys", req.Keys, "peers", req.Peers)
	return wgSetErrno
}

// wgDevice is the UAPI view of the node: the tunnel's status for what
// changes (endpoints, handshakes, counters, the peer set), the node's mesh
// view for the keys. Peers are matched by public key, so a status taken
// while a reload swaps the node still pairs each peer with its own
// preshared key, or none for a peer the other view lacks.
func wgDevice(st tunnel.Status, node *config.Node) uapi.Device {
	d := uapi.Device{PrivateKey: secret(node.Private.Base64()), ListenPort: st.ListenPort}
	psk := make(map[keys.Public]keys.Preshared, len(node.Remotes))
	for _, r := range node.Remotes {
		psk[r.Peer.PublicKey] = r.Preshared
	}
	for _, ps := range st.Peers {
		pub, err := keys.ParsePublic(ps.PublicKey)
		if err != nil {
			continue // the tunnel prints keys it parsed; cannot happen
		}
		p := uapi.Peer{PublicKey: uapi.Key(pub), LastHandshake: ps.LastHandshake, RxBytes: ps.RxBytes, TxBytes: ps.TxBytes}
		if k := psk[pub]; !k.IsZero() {
			p.PresharedKey = secret(k.Base64())
		}
		if ep, err := netip.ParseAddrPort(ps.Endpoint); err == nil {
			p.Endpoint = ep
		}
		for _, s := range ps.Prefixes {
			if pfx, err := netip.ParsePrefix(s); err == nil {
				p.AllowedIPs = append(p.AllowedIPs, pfx)
			}
		}
		if ps.Keepalive != "" {
			p.PersistentKeepalive, _ = time.ParseDuration(ps.Keepalive)
		}
		d.Peers = append(d.Peers, p)
	}
	return d
}

// secret turns the Base64 form of a key (keys' one deliberate way out) into
// the protocol's key type.
func secret(b64 string) uapi.Secret {
	var s uapi.Secret
	b, err := base64.StdEncoding.DecodeString(b64)
	if err == nil && len(b) == len(s) {
		copy(s[:], b)
	}
	return s
}
