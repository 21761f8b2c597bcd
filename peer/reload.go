package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/tunnel"
)

// A reload takes a new view of the mesh (the mesh file read again, or the
// latest revision read from etcd, with the options of the start) and applies only what differs to the
// running node: the peer set through the device's Reconfigure, this node's
// addresses and MTU, the system routes of the prefixes that changed, the
// capture and the log level. The triggers share it (SIGHUP, `peer
// reload` over the control socket, -watch or the etcd watch), and reloads run one at a time.
//
// Everything is checked before anything changes: an invalid file, or one
// that changes what only a restart can (this node's key, the interface
// name, the listen port, the driver), is refused and the node runs on
// untouched.

// liveDevice is what a reload changes on the running tunnel;
// *tunnel.Device is the real one.
type liveDevice interface {
	// Reconfigure replaces the peer set, diffed by public key; on error
	// nothing changed.
	Reconfigure(peers []tunnel.PeerConfig) (tunnel.Changes, error)
	// SetMTU changes the MTU the device pads for.
	SetMTU(mtu int)
	// SetTap replaces the capture tap (nil: none).
	SetTap(t tunnel.Tap)
	// SetServeRelay turns serving as a relay on or off.
	SetServeRelay(on bool)
}

var _ liveDevice = (*tunnel.Device)(nil)

// peerConfigs is the tunnel's peer set for node, at start and at every
// reload alike.
func peerConfigs(node *config.Node) []tunnel.PeerConfig {
	peers := make([]tunnel.PeerConfig, 0, len(node.Remotes))
	for _, r := range node.Remotes {
		peers = append(peers, tunnel.PeerConfig{
			Name:      r.Peer.Name,
			PublicKey: r.Peer.PublicKey,
			Preshared: r.Preshared,
			Prefixes:  r.Prefixes,
			Endpoint:  r.Endpoint,
			Keepalive: r.Peer.Keepalive,
			Relay:     r.Peer.Relay,
		})
	}
	return peers
}

// relayNames are the relays of the mesh this node may use (not itself),
// in file order, for the log.
func relayNames(node *config.Node) []string {
	var out []string
	for _, r := range node.Remotes {
		if r.Peer.Relay {
			out = append(out, r.Peer.Name)
		}
	}
	return out
}

// refusedError is a reload that changed nothing because of what it asked
// for: an invalid file or a change that needs a restart. `peer reload`
// exits 2 for it, as `peer check` does for a bad file.
type refusedError struct{ err error }

func (e refusedError) Error() string { return e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }

// errShuttingDown answers a reload that arrives while the node stops.
var errShuttingDown = errors.New("the node is shutting down")

// reloadReport is what a reload changed, in the words `peer reload` prints
// and the JSON it answers with. Empty slices are left out.
type reloadReport struct {
	AddedPeers       []string   `json:"added_peers,omitempty"`
	RemovedPeers     []string   `json:"removed_peers,omitempty"`
	UpdatedPeers     []string   `json:"updated_peers,omitempty"`
	RekeyedPeers     []string   `json:"rekeyed_peers,omitempty"`
	RoutesAdded      []string   `json:"routes_added,omitempty"`
	RoutesRemoved    []string   `json:"routes_removed,omitempty"`
	AddressesAdded   []string   `json:"addresses_added,omitempty"`
	AddressesRemoved []string   `json:"addresses_removed,omitempty"`
	MTU              *mtuChange `json:"mtu,omitempty"`
	// Exit is the exit this node uses, when that changed ("none" for none).
	Exit *exitChange `json:"exit,omitempty"`
	// ServeRelay is whether this node serves as a relay, when its own
	// relay: changed.
	ServeRelay *relayChange `json:"serve_relay,omitempty"`
	// Policy is, when the policy beyond the routes changed, what it is
	// now (see describePolicy): an exit, the subnets or the MTU changed.
	Policy string `json:"policy,omitempty"`
}

// exitChange is the exit in use before and after a reload.
type exitChange struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// relayChange is whether this node serves as a relay, before and after a
// reload.
type relayChange struct {
	Old bool `json:"old"`
	New bool `json:"new"`
}

// mtuChange is the interface MTU before and after a reload.
type mtuChange struct {
	Old int `json:"old"`
	New int `json:"new"`
}

// fact is one line of a report: its label and its value.
type fact struct{ label, value string }

// facts returns the non-empty categories of r in their fixed order.
func (r *reloadReport) facts() []fact {
	var out []fact
	for _, c := range []struct {
		label string
		names []string
	}{
		{"added peers", r.AddedPeers},
		{"removed peers", r.RemovedPeers},
		{"updated peers", r.UpdatedPeers},
		{"rekeyed peers", r.RekeyedPeers},
		{"routes added", r.RoutesAdded},
		{"routes removed", r.RoutesRemoved},
		{"addresses added", r.AddressesAdded},
		{"addresses removed", r.AddressesRemoved},
	} {
		if len(c.names) > 0 {
			out = append(out, fact{c.label, strings.Join(c.names, " ")})
		}
	}
	if r.MTU != nil {
		out = append(out, fact{"mtu", fmt.Sprintf("%d -> %d", r.MTU.Old, r.MTU.New)})
	}
	if r.Exit != nil {
		out = append(out, fact{"exit", fmt.Sprintf("%s -> %s", r.Exit.Old, r.Exit.New)})
	}
	if r.ServeRelay != nil {
		out = append(out, fact{"serves as relay", fmt.Sprintf("%s -> %s", yesNo(r.ServeRelay.Old), yesNo(r.ServeRelay.New))})
	}
	if r.Policy != "" {
		out = append(out, fact{"policy", r.Policy})
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Empty reports whether the reload changed nothing.
func (r *reloadReport) Empty() bool { return len(r.facts()) == 0 }

// String is the report as `peer reload` prints it: one line per non-empty
// category, "label: values", or the single line "no changes".
func (r *reloadReport) String() string {
	facts := r.facts()
	if len(facts) == 0 {
		return "no changes\n"
	}
	var b strings.Builder
	for _, f := range facts {
		fmt.Fprintf(&b, "%s: %s\n", f.label, f.value)
	}
	return b.String()
}

// reloadAnswer is the control socket's answer to a reload request.
type reloadAnswer struct {
	// Report is what changed; with Error set, what changed before the
	// failure.
	Report *reloadReport `json:"report,omitempty"`
	// Refused is why nothing was applied (FILE:LINE lines).
	Refused string `json:"refused,omitempty"`
	// Error is a failure while applying (a system command), or a node
	// that does not know the request.
	Error string `json:"error,omitempty"`
}

// reloader owns the state a reload compares against and serializes
// reloads.
type reloader struct {
	// load returns the node's new view of the mesh, with the same
	// NodeOptions (and -driver) as at start. It is the only part that
	// knows where the mesh comes from (a meshSource); it runs under mu,
	// so a slow load cannot apply an older view after a newer one.
	load func() (*config.Node, error)
	// captureFor overlays the command line's capture flags on the mesh
	// file's capture: section (-pcap-keys can come only from there).
	captureFor func(config.Capture) captureOptions
	dev        liveDevice
	sys        system
	log        *slog.Logger
	level      *slog.LevelVar
	verbose    bool // -v: debug logs, whatever the file says
	routes     bool // the node installs its routes (no -no-routes)
	userspace  bool // driver netstack: nothing on the host to configure
	// mark sets (true) or clears the firewall mark of the node's UDP
	// socket, which keeps the encrypted traffic of a node using an exit
	// out of its own tunnel.
	mark func(on bool) error
	// applied, if set, is told that the mesh of the last load is in use
	// (the etcd source caches it).
	applied func()

	mu       sync.Mutex
	closed   bool
	node     *config.Node
	plan     netconf.Plan // as applied, with the interface's actual name
	capture  captureOptions
	closeTap func()
	// captureDrops keeps the capture drops counted across the writers
	// reloads replace (nil: not counted).
	captureDrops *captureDrops
	// hostAddrs is the device's LocalAddrs, told of each new mesh (nil:
	// none, in tests that build a reloader alone).
	hostAddrs *hostAddrs

	// outcomes is how the reloads ended, for status and metrics.
	outcomes reloadOutcomes
}

// How a reload ended (reloadOutcome.Result, the result label of
// peer_reloads_total).
const (
	reloadApplied    = "reloaded"   // the mesh changed and is in place
	reloadUnchanged  = "unchanged"  // nothing to do
	reloadRefused    = "refused"    // a bad mesh: the running one stays, untouched
	reloadIncomplete = "incomplete" // applied in part: see the log
)

// reloadResults are all the results, for metrics that show each from 0.
var reloadResults = []string{reloadApplied, reloadUnchanged, reloadRefused, reloadIncomplete}

// reloadOutcome is how one reload ended.
type reloadOutcome struct {
	At      time.Time `json:"at"`
	Trigger string    `json:"trigger"` // SIGHUP, peer reload, watch, etcd
	Result  string    `json:"result"`  // one of reloadResults
	Error   string    `json:"error,omitempty"`
}

// succeeded says the reload left the node on the mesh it was given.
func (o *reloadOutcome) succeeded() bool {
	return o.Result == reloadApplied || o.Result == reloadUnchanged
}

// reloadOutcomes keeps the last reload's outcome, the last success and a
// count by result. Its own lock: status reads it while a reload runs.
type reloadOutcomes struct {
	mu          sync.Mutex
	last        *reloadOutcome
	lastSuccess time.Time
	counts      map[string]uint64
}

// start sets the time of the start, which counts as the first success.
func (o *reloadOutcomes) start(t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastSuccess = t
}

func (o *reloadOutcomes) record(trigger, result string, err error) {
	out := &reloadOutcome{At: time.Now(), Trigger: trigger, Result: result}
	if err != nil {
		out.Error = err.Error()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last = out
	if out.succeeded() {
		o.lastSuccess = out.At
	}
	if o.counts == nil {
		o.counts = make(map[string]uint64)
	}
	o.counts[result]++
}

// snapshot returns the last outcome (nil: no reload yet), the time of
// the last success (the start before the first) and the counts by result, each present.
func (o *reloadOutcomes) snapshot() (*reloadOutcome, time.Time, map[string]uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	counts := make(map[string]uint64, len(reloadResults))
	for _, r := range reloadResults {
		counts[r] = o.counts[r]
	}
	var last *reloadOutcome
	if o.last != nil {
		c := *o.last
		last = &c
	}
	return last, o.lastSuccess, counts
}

// currentPlan is the system configuration as last applied.
func (r *reloader) currentPlan() netconf.Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.plan
}

// currentNode is the node's view of the mesh as last applied.
func (r *reloader) currentNode() *config.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node
}

// close ends reloading and closes the tap; the node is shutting down.
func (r *reloader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.closeTap != nil {
		r.closeTap()
		r.closeTap = nil
	}
}

// reload reads the mesh again and applies it.
func (r *reloader) reload(ctx context.Context) (reloadReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return reloadReport{}, errShuttingDown
	}
	// Under mu, so that concurrent reloads never interleave their
	// RELOADING=1 and READY=1. The node serves throughout, so READY=1
	// follows even a refused or failed reload.
	r.sys.notifyState(r.log, "RELOADING=1", monotonicUsec(), "STATUS=reloading the mesh file")
	defer r.sys.notifyState(r.log, "READY=1", "STATUS=running")
	node, err := r.load()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			err = ue.err
		}
		return reloadReport{}, refusedError{err}
	}
	rep, err := r.applyLocked(ctx, node)
	var refused refusedError
	if r.applied != nil && !errors.As(err, &refused) {
		r.applied()
	}
	return rep, err
}

// applyLocked checks node completely, then applies the difference to the
// device, the capture, the log level and the system, in that order.
func (r *reloader) applyLocked(ctx context.Context, node *config.Node) (reloadReport, error) {
	if err := needsRestart(r.node, node); err != nil {
		return reloadReport{}, refusedError{err}
	}
	if err := checkNetstack(node); err != nil {
		return reloadReport{}, refusedError{err}
	}
	capOpts := r.captureFor(node.Mesh.Capture)
	if err := capOpts.validate(); err != nil {
		return reloadReport{}, refusedError{fmt.Errorf("%s: capture: %w", node.Mesh.File, err)}
	}
	to := plan(node, r.sys.goos)
	to.Iface = r.plan.Iface
	to.SysctlsBefore = r.plan.SysctlsBefore
	if err := to.Validate(); err != nil {
		return reloadReport{}, refusedError{fmt.Errorf("%s: %w", node.Mesh.File, err)}
	}
	var nextTap tunnel.Tap
	var closeNextTap func()
	captureChanged := capOpts != r.capture
	if captureChanged {
		// Only a changed capture is rebuilt: a new writer starts a new
		// file at the path, replacing what was captured so far. It is
		// built before the peers change, so that a capture the system
		// refuses (a missing directory) refuses the whole reload; the
		// price is that the rare Reconfigure error after it leaves the
		// old writer writing to a replaced file.
		t, closeT, err := newTap(node, capOpts, r.log)
		if err != nil {
			return reloadReport{}, refusedError{fmt.Errorf("%s: %w", node.Mesh.File, err)}
		}
		nextTap, closeNextTap = t, r.captureDrops.track(t, closeT)
	}
	changes, err := r.dev.Reconfigure(peerConfigs(node))
	if err != nil {
		if closeNextTap != nil {
			closeNextTap()
		}
		return reloadReport{}, refusedError{fmt.Errorf("the tunnel refused the new peer set: %w", err)}
	}

	// From here on the reload is applied; only the system commands can
	// still fail, and the node then runs the new mesh with what they left.
	// A node started with -no-routes leaves the routes to the operator.
	from, next := r.plan, to
	if !r.routes {
		from, next = withoutNetwork(from), withoutNetwork(next)
	}
	if r.userspace {
		// Nothing on the host to change (needsRestart refused the
		// addresses and the MTU).
		next = from
	}
	// The socket is marked whenever the node uses an exit, -no-routes or
	// not (the operator's rules need the mark too): before the rules go
	// in, and unmarked only after they are gone, so that the encrypted
	// traffic never loops into the tunnel.
	var errs []error
	markOn, markOff := !r.plan.UseExit && to.UseExit, r.plan.UseExit && !to.UseExit
	if markOn {
		if err := r.mark(true); err != nil {
			errs = append(errs, fmt.Errorf("marking the UDP socket for the exit: %w", err))
		}
	}
	diff := netconf.Compare(from, next)
	if diff.NewMTU != diff.OldMTU {
		r.dev.SetMTU(to.MTU)
	}
	serveRelay := r.node.Self.Relay != node.Self.Relay
	if serveRelay {
		r.dev.SetServeRelay(node.Self.Relay)
	}
	if r.hostAddrs != nil {
		r.hostAddrs.setMesh(node)
	}
	if captureChanged {
		r.dev.SetTap(nextTap)
		if r.closeTap != nil {
			r.closeTap()
		}
		r.closeTap = closeNextTap
		r.capture = capOpts
	}
	oldLevel := r.level.Level()
	r.setLevel(node)
	if l := r.level.Level(); l != oldLevel {
		// Logged at the level that lets it through, so a move to warn
		// still says so.
		r.log.Log(ctx, max(l, oldLevel), "log level changed", "from", oldLevel, "to", l)
	}
	if captureChanged {
		r.log.Info("capture restarted", "pcap", capOpts.Pcap, "outer", capOpts.Outer, "log_packets", capOpts.LogPackets)
	}
	r.plan = to

	rep := report(changes, diff)
	if o, n := exitName(r.node), exitName(node); o != n {
		rep.Exit = &exitChange{Old: o, New: n}
	}
	if serveRelay {
		rep.ServeRelay = &relayChange{Old: r.node.Self.Relay, New: node.Self.Relay}
	}
	if diff.PolicyChanged {
		rep.Policy = describePolicy(next, node)
	}
	r.node = node
	cmds := netconf.Diff(from, next)
	if len(cmds) > 0 {
		// Every command is tried even after one failed: the closer the
		// system gets to the plan the better, and `peer routes` prints
		// what is missing.
		if err := r.sys.runTolerant(ctx, cmds); err != nil {
			errs = append(errs, fmt.Errorf("configuring %s failed (run `peer routes` to see the routes it should have): %w", to.Iface, err))
		}
	}
	if markOff {
		if err := r.mark(false); err != nil {
			errs = append(errs, fmt.Errorf("clearing the mark of the UDP socket: %w", err))
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("mesh applied, but %w", errors.Join(errs...))
	}
	return rep, nil
}

// setLevel applies the log level of node (see logLevel).
func (r *reloader) setLevel(node *config.Node) {
	r.level.Set(logLevel(node.Mesh.LogLevel, r.verbose))
}

// logLevel is debug with -v, else the mesh file's log_level (info when not
// set).
func logLevel(name string, verbose bool) slog.Level {
	if verbose {
		return slog.LevelDebug
	}
	switch name {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// report combines the device's and the system's changes. Peer names are
// sorted, whatever order the device gives them in, so that the output of
// `peer reload` is the same for the same change.
func report(c tunnel.Changes, d netconf.Changes) reloadReport {
	rep := reloadReport{
		AddedPeers:       sorted(c.Added),
		RemovedPeers:     sorted(c.Removed),
		UpdatedPeers:     sorted(c.Updated),
		RekeyedPeers:     sorted(c.Rekeyed),
		RoutesAdded:      prefixStrings(d.RoutesAdded),
		RoutesRemoved:    prefixStrings(d.RoutesRemoved),
		AddressesAdded:   prefixStrings(d.AddressesAdded),
		AddressesRemoved: prefixStrings(d.AddressesRemoved),
	}
	if d.OldMTU != d.NewMTU {
		rep.MTU = &mtuChange{Old: d.OldMTU, New: d.NewMTU}
	}
	return rep
}

// describePolicy says what the policy of plan p does, for the reload
// report: "uses exit NAME, serves as exit, clamps MSS to MTU N" in part, or
// "none".
func describePolicy(p netconf.Plan, n *config.Node) string {
	var parts []string
	if p.UseExit {
		parts = append(parts, "uses exit "+exitName(n))
	}
	if p.Exit {
		parts = append(parts, "serves as exit")
	}
	if p.ClampMSS && p.OS == netconf.Linux {
		parts = append(parts, fmt.Sprintf("clamps MSS to MTU %d", p.MTU))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// exitName is the exit node n uses, config.ExitNone for none.
func exitName(n *config.Node) string {
	if n.Exit == nil {
		return config.ExitNone
	}
	return n.Exit.Peer.Name
}

// withoutNetwork is p without what a node started with -no-routes leaves
// to the operator: the routes and the policy (exit, masquerade, MSS).
func withoutNetwork(p netconf.Plan) netconf.Plan {
	p.Routes = nil
	p.UseExit, p.Exit, p.ClampMSS = false, false, false
	return p
}

func sorted(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(names))
}

func prefixStrings(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// needsRestart refuses changes that cannot be applied to a running node,
// each with where it comes from and the advice to restart.
func needsRestart(old, node *config.Node) error {
	var errs config.ErrorList
	add := func(line int, format string, args ...any) {
		errs = append(errs, &config.Error{File: node.Mesh.File, Line: line,
			Msg: fmt.Sprintf(format, args...) + ": this cannot change while the node runs; restart peer to apply it"})
	}
	if old.Private.Public() != node.Private.Public() {
		add(node.Self.Line, "this node's private key changed (now the key of peer %q)", node.Self.Name)
	}
	if old.Interface.Name != node.Interface.Name {
		add(0, "interface name %s -> %s", old.Interface.Name, node.Interface.Name)
	}
	if old.ListenPort != node.ListenPort {
		add(node.Self.Line, "listen port %d -> %d (peer %q)", old.ListenPort, node.ListenPort, node.Self.Name)
	}
	if old.Interface.Driver != node.Interface.Driver {
		add(0, "interface driver %s -> %s", old.Interface.Driver, node.Interface.Driver)
	}
	if old.Interface.Driver == tundev.DriverNetstack {
		// The stack is made with its addresses and MTU, once.
		if !slices.Equal(old.Self.Addresses, node.Self.Addresses) {
			add(node.Self.Line, "addresses of a netstack node %v -> %v (peer %q)", old.Self.Addresses, node.Self.Addresses, node.Self.Name)
		}
		if old.Interface.MTU != node.Interface.MTU {
			add(0, "mtu of a netstack node %d -> %d", old.Interface.MTU, node.Interface.MTU)
		}
	}
	if old.Mesh.Metrics != node.Mesh.Metrics {
		add(node.Mesh.MetricsLine, "metrics address %q -> %q", old.Mesh.Metrics, node.Mesh.Metrics)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// reloadLogged runs one reload for trigger ("SIGHUP", "peer reload",
// "watch"), logs its outcome and returns the answer for the control
// socket.
func (r *reloader) reloadLogged(ctx context.Context, trigger string) reloadAnswer {
	rep, err := r.reload(ctx)
	var refused refusedError
	switch {
	case errors.Is(err, errShuttingDown):
		return reloadAnswer{Error: err.Error()}
	case errors.As(err, &refused):
		r.log.Warn("mesh reload refused", "trigger", trigger, "error", err)
		r.outcomes.record(trigger, reloadRefused, err)
		return reloadAnswer{Refused: err.Error()}
	case err != nil:
		r.log.Error("mesh reload incomplete", append([]any{"trigger", trigger, "error", err}, rep.logAttrs()...)...)
		r.outcomes.record(trigger, reloadIncomplete, err)
		return reloadAnswer{Report: &rep, Error: err.Error()}
	case rep.Empty():
		r.log.Info("mesh unchanged", "trigger", trigger)
		r.outcomes.record(trigger, reloadUnchanged, nil)
	default:
		r.log.Info("mesh reloaded", append([]any{"trigger", trigger}, rep.logAttrs()...)...)
		r.outcomes.record(trigger, reloadApplied, nil)
	}
	return reloadAnswer{Report: &rep}
}

// logAttrs are the facts of r as slog attributes (added_peers="a b", ...).
func (r *reloadReport) logAttrs() []any {
	var out []any
	for _, f := range r.facts() {
		out = append(out, strings.ReplaceAll(f.label, " ", "_"), f.value)
	}
	return out
}

// serve runs a reload for each SIGHUP and each change its mesh source
// reports (changedBy names the trigger: "watch" for the file, "etcd")
// until ctx ends. Either channel may be nil.
func (r *reloader) serve(ctx context.Context, hangup <-chan os.Signal, changed <-chan struct{}, changedBy string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hangup:
			r.reloadLogged(ctx, "SIGHUP")
		case <-changed:
			r.reloadLogged(ctx, changedBy)
		}
	}
}
