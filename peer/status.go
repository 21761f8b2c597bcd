package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/control"
	"github.com/peer-vpn/peer/tunnel"
)

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	iface := fs.String("iface", "peer0", "interface of the node to ask")
	socket := fs.String("socket", "", "control socket path (default /run/peer/<iface>.sock, for users but root\n$XDG_RUNTIME_DIR/peer/<iface>.sock)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := *socket
	if path == "" {
		path = control.SocketPath(*iface)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if *asJSON {
		var raw json.RawMessage
		if err := control.Status(ctx, path, &raw); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "%s\n", raw)
		return err
	}
	var st nodeStatus
	if err := control.Status(ctx, path, &st); err != nil {
		return err
	}
	printStatus(stdout, &st, time.Now())
	return nil
}

// nodeStatus is the control socket's answer to a status request: the
// tunnel's, and what the node does with it beyond the mesh.
type nodeStatus struct {
	tunnel.Status
	// Exit is the exit peer this node sends every destination outside
	// the mesh through, "" for none.
	Exit string `json:"exit,omitempty"`
	// ServesExit says this node is an exit for the others.
	ServesExit bool `json:"serves_exit,omitempty"`
	// Proxies are the proxies, forwards and exposes the node serves
	// ("socks5 127.0.0.1:1080", "expose tcp:10.10.0.1:80=127.0.0.1:8080").
	Proxies []string `json:"proxies,omitempty"`
	// Mesh is where the node's mesh comes from and, for etcd, its link
	// to it.
	Mesh *sourceState `json:"mesh,omitempty"`
	// LastReload is how the last reload ended; nil before the first.
	LastReload *reloadOutcome `json:"last_reload,omitempty"`
}

// nodeStatusOf is the status of a node running n's view of the mesh.
func nodeStatusOf(st tunnel.Status, n *config.Node) nodeStatus {
	ns := nodeStatus{Status: st, ServesExit: n.Self.Exit}
	if n.Exit != nil {
		ns.Exit = n.Exit.Peer.Name
	}
	return ns
}

func printStatus(w io.Writer, st *nodeStatus, now time.Time) {
	fmt.Fprintf(w, "interface %s  driver %s  mtu %d  port %d  public key %s\n",
		st.Interface, st.Driver, st.MTU, st.ListenPort, st.PublicKey)
	if m := st.Mesh; m != nil && m.Etcd != nil {
		fmt.Fprintf(w, "mesh: %s\n", formatEtcdState(m, now))
	}
	if o := st.LastReload; o != nil {
		line := fmt.Sprintf("last reload: %s %s ago (%s)", o.Result, now.Sub(o.At).Truncate(time.Second), o.Trigger)
		if o.Error != "" {
			// A refusal lists each problem on a line of its own.
			line += ": " + strings.ReplaceAll(o.Error, "\n", "; ")
		}
		fmt.Fprintln(w, line)
	}
	if st.Exit != "" {
		fmt.Fprintf(w, "exit: %s (every destination outside the mesh goes through it)\n", st.Exit)
	}
	if st.ServesExit {
		fmt.Fprintln(w, "serves as exit: forwards the mesh's traffic to the outside world")
	}
	if r := st.Relay; r != nil {
		fmt.Fprintf(w, "relay: serving %d %s, %d forwarded, %d introductions, %d refused\n",
			r.Registered, plural(r.Registered, "peer", "peers"), r.Forwarded, r.Introductions, r.Refused)
	}
	for _, p := range st.Proxies {
		fmt.Fprintf(w, "serves: %s\n", p)
	}
	if len(st.Drops) > 0 {
		fmt.Fprintf(w, "dropped: %s\n", formatDrops(st.Drops))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tENDPOINT\tPATH\tHANDSHAKE\tRX\tTX\tDROPS")
	for _, p := range st.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = now.Sub(p.LastHandshake).Truncate(time.Second).String() + " ago"
		}
		ep := p.Endpoint
		if ep == "" {
			ep = "(none)"
		}
		name := p.Name
		if p.Relay {
			name += " (relay)"
		}
		path := p.Path
		if path == "" {
			path = "(none)"
		}
		if !p.PathChanged.IsZero() {
			// Not "ago", which says there was a handshake.
			path += " (since " + now.Sub(p.PathChanged).Truncate(time.Second).String() + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%d pkts)\t%s (%d pkts)\t%s\n", name, ep, path, hs,
			formatBytes(p.RxBytes), p.RxPackets, formatBytes(p.TxBytes), p.TxPackets, formatDrops(p.Drops))
	}
	tw.Flush()
}

// formatEtcdState is the mesh: line of a node whose mesh is in etcd:
// "etcd://HOST/PREFIX revision 42, etcd connected for 5m0s".
func formatEtcdState(m *sourceState, now time.Time) string {
	e := m.Etcd
	line := fmt.Sprintf("%s revision %d", m.Source, e.Revision)
	if e.FromCache {
		line += " (the cache it started from)"
	}
	switch {
	case e.Since.IsZero():
	case e.Connected:
		line += ", etcd connected for " + now.Sub(e.Since).Truncate(time.Second).String()
	default:
		line += ", etcd lost " + now.Sub(e.Since).Truncate(time.Second).String() + " ago: the node runs on this mesh"
	}
	return line
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func formatDrops(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
