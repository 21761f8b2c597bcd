// Package proxy serves the ways users reach the mesh from the host, and the
// mesh reaches the host, when the node's tunnel addresses live in a userspace
// TCP/IP stack: a SOCKS5 server, an HTTP proxy, fixed TCP and UDP forwards
// (host listener, mesh target) and exposes (mesh listener, host target).
//
// The package knows nothing about netstack or WireGuard. Connections into
// the mesh go through a Network, which the node implements with its
// netstack and tests implement with the host's loopback (HostNetwork); names
// are resolved by a function the node supplies (Dialer.Resolve). The flag
// parsers (ParseListen, ParseForward, ParseExpose) return the values the
// node needs to start each server.
//
// Every server serves until its context ends or its listener closes, and
// returns only after the connections it accepted are closed.
package proxy
