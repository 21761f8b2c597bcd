package config

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/peer-vpn/peer/capture"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
)

// maxErrors bounds how many problems one Parse reports.
const maxErrors = 50

// Parse decodes and checks a mesh file. file names it in errors and gives
// the directory that relative paths in it are relative to. On failure the
// error is an ErrorList holding every problem found, in line order.
func Parse(file string, data []byte) (*Mesh, error) {
	p := &parser{file: file, dir: filepath.Dir(file), nameLine: map[int]int{}, keyLine: map[int]int{}}
	m := p.parse(data)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, p.errs
	}
	return m, nil
}

type parser struct {
	file string
	dir  string
	errs ErrorList
	// nameLine and keyLine hold, by peer index, the lines of the name and
	// public_key values, for the duplicate checks.
	nameLine, keyLine map[int]int
}

// field is one key: value pair of a mapping.
type field struct{ key, val *yaml.Node }

// routed is one prefix routed to a peer, for the check that no prefix is
// routed to two.
type routed struct {
	pfx  netip.Prefix
	peer int
	line int
	desc string
}

func (p *parser) errorf(line int, format string, args ...any) {
	switch {
	case len(p.errs) < maxErrors:
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
	case len(p.errs) == maxErrors:
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: "too many problems; stopping here"})
	}
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlError turns an error of the YAML decoder into an Error, keeping the
// decoder's line when it gives one.
func (p *parser) yamlError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else if strings.Contains(msg, "control characters") {
		line = controlCharLine(data)
	}
	p.errorf(line, "YAML syntax: %s", msg)
}

// controlCharLine returns the line of the first control character YAML
// refuses, or 0.
func controlCharLine(data []byte) int {
	for i, c := range data {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
			return 1 + bytes.Count(data[:i], []byte{'\n'})
		}
	}
	return 0
}

func (p *parser) parse(data []byte) *Mesh {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(0, "the file is empty; it needs at least a peers list")
		} else {
			p.yamlError(err, data)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(extra.Line, "a second YAML document starts here; a mesh file holds exactly one")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err, data)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.errorf(doc.Line, "the file is empty; it needs at least a peers list")
		return nil
	}
	root := p.deref(doc.Content[0])
	if root == nil {
		return nil
	}
	if isNull(root) {
		p.errorf(root.Line, "the file is empty; it needs at least a peers list")
		return nil
	}

	m := &Mesh{
		File:      p.file,
		Interface: Interface{Name: DefaultInterfaceName, MTU: DefaultMTU, Driver: DefaultDriver},
	}
	fs, ok := p.mapping(root, "the top level", "interface", "private_key_file", "capture", "log_level", "metrics", "trusted_signers", "peers")
	if !ok {
		return nil
	}
	if f, ok := fs["trusted_signers"]; ok && !isNull(f.val) {
		m.TrustedSigners = p.signers(f)
	}
	var mtuLine int
	if f, ok := fs["interface"]; ok && !isNull(f.val) {
		mtuLine = p.iface(f.val, &m.Interface)
	}
	if f, ok := fs["private_key_file"]; ok {
		if s, ok := p.str(f, "private_key_file"); ok && s != "" {
			m.PrivateKeyFile = p.path(s)
		}
	}
	if f, ok := fs["capture"]; ok && !isNull(f.val) {
		p.capture(f.val, &m.Capture)
	}
	if f, ok := fs["log_level"]; ok {
		if s, ok := p.str(f, "log_level"); ok && s != "" {
			if !slices.Contains(LogLevels, s) {
				p.errorf(f.val.Line, "log_level: unknown level %q; use one of %s", s, strings.Join(LogLevels, ", "))
			} else {
				m.LogLevel = s
			}
		}
	}
	if f, ok := fs["metrics"]; ok {
		p.metrics(f, m)
	}
	f, ok := fs["peers"]
	if !ok {
		p.errorf(root.Line, "missing required field %q: list every node of the mesh there", "peers")
		return m
	}
	var seq *yaml.Node
	switch {
	case isNull(f.val):
	case f.val.Kind != yaml.SequenceNode:
		p.errorf(f.val.Line, "peers: expected a list of peers, got %s", kindName(f.val))
		return m
	default:
		seq = f.val
	}
	if seq == nil || len(seq.Content) == 0 {
		p.errorf(f.key.Line, "peers: the list is empty; a mesh needs at least one peer")
		return m
	}
	var prefixes []routed
	for i, item := range seq.Content {
		if item = p.deref(item); item == nil {
			m.Peers = append(m.Peers, Peer{Line: seq.Content[i].Line}) // keep indexes aligned
			continue
		}
		peer, rs := p.peer(i, item)
		m.Peers = append(m.Peers, peer)
		prefixes = append(prefixes, rs...)
	}
	p.crossChecks(m, prefixes)
	p.checkMTU(m, mtuLine)
	return m
}

// deref follows an alias. Aliases to plain values are resolved (keeping the
// alias's line); aliases to mappings or lists are refused, which also bounds
// the work a small file can cause. It returns nil after reporting a problem.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.AliasNode {
		return n
	}
	t := n.Alias
	for i := 0; t != nil && t.Kind == yaml.AliasNode && i < 8; i++ {
		t = t.Alias
	}
	if t == nil || t.Kind != yaml.ScalarNode {
		p.errorf(n.Line, "alias *%s: aliases may only stand for plain values, not lists or mappings", n.Value)
		return nil
	}
	c := *t
	c.Line, c.Column = n.Line, n.Column
	return &c
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// mapping checks that n is a mapping whose keys are all in allowed, each at
// most once, and returns its fields by name (values already dereferenced;
// fields whose alias was refused are left out).
func (p *parser) mapping(n *yaml.Node, where string, allowed ...string) (map[string]field, bool) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: expected a mapping of fields, got %s", where, kindName(n))
		return nil, false
	}
	fs := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k.Line, "%s: field names must be plain words, got %s", where, kindName(k))
			continue
		}
		name := k.Value
		if name == "<<" {
			p.errorf(k.Line, "%s: merge keys (<<) are not supported", where)
			continue
		}
		if !slices.Contains(allowed, name) {
			msg := fmt.Sprintf("%s: unknown field %q", where, name)
			if s := suggest(name, allowed); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(k.Line, "%s", msg)
			continue
		}
		if prev, dup := fs[name]; dup {
			p.errorf(k.Line, "%s: field %q appears twice (first on line %d)", where, name, prev.key.Line)
			continue
		}
		if v = p.deref(v); v == nil {
			continue
		}
		fs[name] = field{k, v}
	}
	return fs, true
}

// suggest returns the allowed name closest to name if it is a likely typo.
func suggest(name string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := editDistance(name, a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// str returns a scalar field as text. A null value gives "", true.
func (p *parser) str(f field, what string) (string, bool) {
	v := f.val
	if v.Kind != yaml.ScalarNode {
		p.errorf(v.Line, "%s: expected a string, got %s", what, kindName(v))
		return "", false
	}
	switch tag := v.ShortTag(); {
	case tag == "!!null":
		return "", true
	case tag == "!!bool":
		p.errorf(v.Line, "%s: expected a string, got the boolean %s (quote it if you mean the text)", what, v.Value)
		return "", false
	case tag == "!!binary" || !strings.HasPrefix(tag, "!!"):
		p.errorf(v.Line, "%s: expected a string, got a value tagged %s", what, tag)
		return "", false
	}
	return v.Value, true
}

// integer returns an integer field.
func (p *parser) integer(f field, what string) (int64, bool) {
	v := f.val
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		p.errorf(v.Line, "%s: expected an integer, got %s", what, kindName(v))
		return 0, false
	}
	var n int64
	if err := v.Decode(&n); err != nil {
		p.errorf(v.Line, "%s: %s is out of range", what, v.Value)
		return 0, false
	}
	return n, true
}

// boolean returns a true/false field.
func (p *parser) boolean(f field, what string) (bool, bool) {
	v := f.val
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
		p.errorf(v.Line, "%s: expected true or false, got %s", what, kindName(v))
		return false, false
	}
	var b bool
	if err := v.Decode(&b); err != nil {
		p.errorf(v.Line, "%s: expected true or false, got %s", what, kindName(v))
		return false, false
	}
	return b, true
}

// item is one string of a list field, with its line.
type item struct {
	s    string
	line int
}

// list returns a field that is either one string or a list of strings.
func (p *parser) list(f field, what string) ([]item, bool) {
	v := f.val
	if v.Kind == yaml.ScalarNode {
		s, ok := p.str(f, what)
		if !ok || s == "" {
			return nil, ok
		}
		return []item{{s, v.Line}}, true
	}
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, "%s: expected a value or a list of values, got %s", what, kindName(v))
		return nil, false
	}
	out := make([]item, 0, len(v.Content))
	ok := true
	for _, e := range v.Content {
		if e = p.deref(e); e == nil {
			ok = false
			continue
		}
		if isNull(e) {
			p.errorf(e.Line, "%s: empty list item", what)
			ok = false
			continue
		}
		s, good := p.str(field{f.key, e}, what)
		if !good {
			ok = false
			continue
		}
		out = append(out, item{s, e.Line})
	}
	return out, ok
}

// signers reads trusted_signers: base64 Ed25519 public keys, no repeats.
func (p *parser) signers(f field) []ed25519.PublicKey {
	items, _ := p.list(f, "trusted_signers")
	var out []ed25519.PublicKey
	seen := map[string]int{}
	for _, it := range items {
		k, err := ParseSigner(it.s)
		if err != nil {
			p.errorf(it.line, "trusted_signers: %v", err)
			continue
		}
		if first, dup := seen[string(k)]; dup {
			p.errorf(it.line, "trusted_signers: %s is listed twice (first on line %d)", it.s, first)
			continue
		}
		seen[string(k)] = it.line
		out = append(out, k)
	}
	return out
}

// path joins a relative path to the mesh file's directory.
func (p *parser) path(s string) string {
	if filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(p.dir, s)
}

// iface parses interface: and returns the line of mtu (0 if not written).
func (p *parser) iface(n *yaml.Node, out *Interface) int {
	fs, ok := p.mapping(n, "interface", "name", "mtu", "driver")
	if !ok {
		return 0
	}
	if f, ok := fs["name"]; ok {
		if s, ok := p.str(f, "interface.name"); ok && s != "" {
			if err := netconf.CheckIfaceName(s); err != nil {
				p.errorf(f.val.Line, "interface.name: %v", err)
			} else {
				out.Name = s
			}
		}
	}
	mtuLine := 0
	if f, ok := fs["mtu"]; ok && !isNull(f.val) {
		if v, ok := p.integer(f, "interface.mtu"); ok {
			if err := tundev.CheckMTU(clampInt(v), false); err != nil {
				p.errorf(f.val.Line, "interface.mtu: %v", err)
			} else {
				out.MTU = int(v)
				mtuLine = f.val.Line
			}
		}
	}
	if f, ok := fs["driver"]; ok {
		if s, ok := p.str(f, "interface.driver"); ok && s != "" {
			if err := tundev.CheckDriver(s); err != nil {
				p.errorf(f.val.Line, "interface.driver: %v", err)
			} else {
				out.Driver = s
			}
		}
	}
	return mtuLine
}

// metrics reads metrics: (see CheckMetricsAddr); empty or null is off.
func (p *parser) metrics(f field, m *Mesh) {
	if f.val.Kind == yaml.SequenceNode {
		// metrics: [::1]:9586 is a YAML list followed by junk.
		p.errorf(f.val.Line, "metrics: expected HOST:PORT, got a list; quote an IPv6 address: metrics: \"[::1]:9586\"")
		return
	}
	s, ok := p.str(f, "metrics")
	if !ok || s == "" {
		return
	}
	if err := CheckMetricsAddr(s); err != nil {
		p.errorf(f.val.Line, "metrics: %v", err)
		return
	}
	m.Metrics = s
	m.MetricsLine = f.val.Line
}

func (p *parser) capture(n *yaml.Node, out *Capture) {
	fs, ok := p.mapping(n, "capture", "pcap", "outer", "keys", "log_packets", "max_size", "max_files")
	if !ok {
		return
	}
	if f, ok := fs["pcap"]; ok {
		if s, ok := p.str(f, "capture.pcap"); ok && s != "" {
			out.Pcap = p.path(s)
		}
	}
	if f, ok := fs["keys"]; ok {
		// The mesh file is copied to every host: keys: true there would make
		// every node write its long-term private key into its capture.
		p.errorf(f.key.Line, "capture.keys is not allowed in the mesh file: it would make every node "+
			"write its private key into its capture file; delete this line and run the one node whose "+
			"capture must be decrypted with -pcap-keys")
	}
	for name, dst := range map[string]*bool{"outer": &out.Outer, "log_packets": &out.LogPackets} {
		if f, ok := fs[name]; ok && !isNull(f.val) {
			*dst, _ = p.boolean(f, "capture."+name)
		}
	}
	if f, ok := fs["max_size"]; ok && !isNull(f.val) {
		if v, ok := p.integer(f, "capture.max_size"); ok {
			if err := capture.CheckRotation(v, 0); err != nil {
				p.errorf(f.val.Line, "capture.max_size: %v", err)
			} else {
				out.MaxSize = v
			}
		}
	}
	if f, ok := fs["max_files"]; ok && !isNull(f.val) {
		if v, ok := p.integer(f, "capture.max_files"); ok {
			// Above 1<<31-1 it would not fit an int where int has 32 bits.
			if err := capture.CheckRotation(0, clampInt(v)); err != nil {
				p.errorf(f.val.Line, "capture.max_files: %v", err)
			} else if v > 1<<31-1 {
				p.errorf(f.val.Line, "capture.max_files: %d is out of range; use 0 for unlimited", v)
			} else {
				out.MaxFiles = int(v)
			}
		}
	}
}

// peerLabel names list item i for messages: peer "NAME" when it has a plain
// name, else peers[i].
func peerLabel(i int, n *yaml.Node) string {
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		if k.Kind == yaml.ScalarNode && k.Value == "name" && v.Kind == yaml.ScalarNode && validName(v.Value) {
			return fmt.Sprintf("peer %q", v.Value)
		}
	}
	return fmt.Sprintf("peers[%d]", i)
}

func validName(s string) bool {
	if s == "" || len(s) > MaxPeerName {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// peer parses list item i. It returns the peer with every field that was
// valid, and the prefixes routed to it with their lines.
func (p *parser) peer(i int, n *yaml.Node) (Peer, []routed) {
	label := peerLabel(i, n)
	out := Peer{Line: n.Line}
	fs, ok := p.mapping(n, label, "name", "public_key", "address", "subnets", "endpoint", "keepalive", "preshared_key_file", "exit", "use_exit", "relay")
	if !ok {
		return out, nil
	}
	missing := func(name string) bool {
		f, ok := fs[name]
		if !ok || isNull(f.val) {
			p.errorf(n.Line, "%s: missing required field %q", label, name)
			return true
		}
		return false
	}
	if !missing("name") {
		f := fs["name"]
		if s, ok := p.str(f, label+": name"); ok {
			if validName(s) {
				out.Name = s
				p.nameLine[i] = f.val.Line
			} else {
				p.errorf(f.val.Line, "%s: name %q must be 1 to %d characters from a-z, 0-9 and '-'", label, s, MaxPeerName)
			}
		}
	}
	if !missing("public_key") {
		f := fs["public_key"]
		if s, ok := p.str(f, label+": public_key"); ok {
			if k, err := keys.ParsePublic(strings.TrimSpace(s)); err != nil {
				p.errorf(f.val.Line, "%s: public_key: %v", label, err)
			} else if k.IsZero() {
				p.errorf(f.val.Line, "%s: public_key is all zeros", label)
			} else {
				out.PublicKey = k
				p.keyLine[i] = f.val.Line
			}
		}
	}
	var rs []routed
	if !missing("address") {
		f := fs["address"]
		items, ok := p.list(f, label+": address")
		if ok && len(items) == 0 {
			p.errorf(f.val.Line, "%s: address is empty; give at least one address", label)
		}
		for _, it := range items {
			a, err := parseAddress(it.s)
			if err != nil {
				p.errorf(it.line, "%s: address %q: %v", label, it.s, err)
				continue
			}
			out.Addresses = append(out.Addresses, a)
			host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
			rs = append(rs, routed{host, i, it.line, "address " + a.Addr().String()})
		}
	}
	if f, ok := fs["subnets"]; ok && !isNull(f.val) {
		items, _ := p.list(f, label+": subnets")
		for _, it := range items {
			s, err := parseSubnet(it.s)
			if err != nil {
				p.errorf(it.line, "%s: subnet %q: %v", label, it.s, err)
				continue
			}
			if s.Bits() == 0 {
				p.errorf(it.line, "%s: subnet %s is a default route; to send the world through this peer give it exit: true and the nodes that want that use_exit: NAME", label, s)
				continue
			}
			out.Subnets = append(out.Subnets, s)
			rs = append(rs, routed{s, i, it.line, "subnet " + s.String()})
		}
	}
	if f, ok := fs["endpoint"]; ok {
		if s, ok := p.str(f, label+": endpoint"); ok && s != "" {
			if _, _, _, err := splitEndpoint(s); err != nil {
				p.errorf(f.val.Line, "%s: endpoint %q: %v", label, s, err)
			} else {
				out.Endpoint = s
			}
		}
	}
	if f, ok := fs["keepalive"]; ok && !isNull(f.val) {
		if d, err := parseKeepalive(f.val); err != nil {
			p.errorf(f.val.Line, "%s: keepalive %s: %v", label, kindName(f.val), err)
		} else {
			out.Keepalive = d
		}
	}
	if f, ok := fs["preshared_key_file"]; ok {
		if s, ok := p.str(f, label+": preshared_key_file"); ok && s != "" {
			out.PresharedKeyFile = p.path(s)
		}
	}
	if f, ok := fs["exit"]; ok && !isNull(f.val) {
		out.Exit, _ = p.boolean(f, label+": exit")
	}
	if f, ok := fs["use_exit"]; ok {
		if s, ok := p.str(f, label+": use_exit"); ok && s != "" {
			out.UseExit, out.UseExitLine = s, f.val.Line
		}
	}
	if f, ok := fs["relay"]; ok && !isNull(f.val) {
		out.Relay, _ = p.boolean(f, label+": relay")
		// A bad endpoint has been reported already; only a missing one
		// is reported here.
		if ep, given := fs["endpoint"]; out.Relay && (!given || isNull(ep.val) || ep.val.Kind == yaml.ScalarNode && ep.val.Value == "") {
			p.errorf(f.val.Line, "%s: relay: true needs an endpoint: the peers that cannot reach each other "+
				"reach the relay instead, so they must know where it is; add endpoint: HOST:PORT or remove relay: true", label)
		}
	}
	return out, rs
}

// parseAddress parses an interface address: a host address with its
// network length, or a bare address taken as /32 or /128.
func parseAddress(s string) (netip.Prefix, error) {
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if pfx, err = netip.ParsePrefix(s); err != nil {
			return pfx, errors.New("not an IP address with a prefix length, like 10.10.0.1/24 or fd10::1/64")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return pfx, errors.New("not an IP address, like 10.10.0.1/24 or fd10::1/64")
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	a := pfx.Addr()
	switch {
	case a.Is4In6():
		return pfx, fmt.Errorf("is an IPv4-mapped IPv6 address; write it as IPv4 (%s)", a.Unmap())
	case a.IsUnspecified():
		return pfx, errors.New("is the unspecified address")
	case a.IsLoopback():
		return pfx, errors.New("is a loopback address")
	case a.IsMulticast():
		return pfx, errors.New("is a multicast address")
	}
	bits, max := pfx.Bits(), a.BitLen()
	if bits < max-1 {
		if net := pfx.Masked().Addr(); a == net {
			return pfx, fmt.Errorf("is the network address of %s; use a host address such as %s/%d", pfx.Masked(), net.Next(), bits)
		}
		if a.Is4() {
			v := a.As4()
			host := uint32(1)<<(32-bits) - 1
			if (uint32(v[0])<<24|uint32(v[1])<<16|uint32(v[2])<<8|uint32(v[3]))&host == host {
				return pfx, fmt.Errorf("is the broadcast address of %s", pfx.Masked())
			}
		}
	}
	return pfx, nil
}

// parseSubnet parses a routed prefix, which must be masked.
func parseSubnet(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		return netip.Prefix{}, errors.New("needs a prefix length, like 10.20.1.0/24")
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return pfx, errors.New("not an IP prefix, like 10.20.1.0/24 or fd00:20:1::/64")
	}
	a := pfx.Addr()
	switch {
	case a.Is4In6():
		return pfx, errors.New("is an IPv4-mapped IPv6 prefix; write it as IPv4")
	case a.IsLoopback() && pfx.Bits() > 0:
		return pfx, errors.New("is a loopback prefix")
	case a.IsMulticast():
		return pfx, errors.New("is a multicast prefix")
	}
	if m := pfx.Masked(); m != pfx {
		return pfx, fmt.Errorf("has host bits set; did you mean %s?", m)
	}
	return pfx, nil
}

// splitEndpoint checks host:port syntax. addr is valid when host is an IP
// literal; otherwise host is a syntactically valid DNS name.
func splitEndpoint(s string) (host string, port uint16, addr netip.Addr, err error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return "", 0, addr, fmt.Errorf("%v; write an IPv6 endpoint as [address]:port", err)
		}
		return "", 0, addr, fmt.Errorf("%v; write host:port, like 198.51.100.1:51820", err)
	}
	n, perr := strconv.ParseUint(ps, 10, 16)
	if perr != nil || n == 0 {
		return "", 0, addr, fmt.Errorf("port %q must be a number from 1 to 65535", ps)
	}
	port = uint16(n)
	if host == "" {
		return "", 0, addr, errors.New("missing host before the port")
	}
	if a, aerr := netip.ParseAddr(host); aerr == nil {
		switch {
		case a.IsUnspecified():
			return "", 0, addr, errors.New("the unspecified address cannot be reached")
		case a.IsMulticast():
			return "", 0, addr, errors.New("is a multicast address")
		}
		return host, port, a.Unmap(), nil
	}
	if strings.HasPrefix(s, "[") {
		return "", 0, addr, fmt.Errorf("%q in brackets is not an IPv6 address", host)
	}
	if err := checkHostname(host); err != nil {
		return "", 0, addr, err
	}
	return host, port, addr, nil
}

// checkHostname accepts DNS names: dot-separated labels of letters, digits,
// '-' and '_', not starting or ending with '-', with a last label that is
// not all digits (so that a malformed IPv4 address is not taken for a name).
func checkHostname(h string) error {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host %q is not an IP address or DNS name", h)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host %q is not an IP address or DNS name", h)
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q is not an IP address or DNS name", h)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("host %q is not a valid IP address", h)
	}
	return nil
}

// parseKeepalive accepts a Go duration string or an integer of seconds.
func parseKeepalive(v *yaml.Node) (time.Duration, error) {
	if v.Kind != yaml.ScalarNode {
		return 0, errors.New("expected a duration like 25s")
	}
	var d time.Duration
	switch v.ShortTag() {
	case "!!int":
		var n int64
		if err := v.Decode(&n); err != nil || n < -1<<20 || n > 1<<20 {
			return 0, errors.New("is out of range")
		}
		d = time.Duration(n) * time.Second
	case "!!str":
		var err error
		if d, err = time.ParseDuration(v.Value); err != nil {
			return 0, errors.New("is not a duration like 25s or 1m")
		}
	default:
		return 0, errors.New("expected a duration like 25s")
	}
	switch {
	case d < 0:
		return 0, errors.New("is negative; use 0 or leave it out to turn keepalive off")
	case d%time.Second != 0:
		return 0, errors.New("must be a whole number of seconds")
	case d > MaxKeepalive:
		return 0, fmt.Errorf("is above the maximum %v", MaxKeepalive)
	}
	return d, nil
}

// crossChecks finds problems between peers: duplicate names and keys, and
// prefixes routed to two different peers. Each is reported on the line of
// the later of the two, naming the earlier one and its line.
func (p *parser) crossChecks(m *Mesh, rs []routed) {
	names := map[string]int{}
	pubs := map[keys.Public]int{}
	for i := range m.Peers {
		pe := &m.Peers[i]
		if pe.Name != "" {
			if j, dup := names[pe.Name]; dup {
				p.errorf(p.nameLine[i], "peer name %q is used twice (first on line %d)", pe.Name, p.nameLine[j])
			} else {
				names[pe.Name] = i
			}
		}
		if !pe.PublicKey.IsZero() {
			if j, dup := pubs[pe.PublicKey]; dup {
				p.errorf(p.keyLine[i], "%s has the same public_key as %s (line %d)", nameOf(m, i), nameOf(m, j), p.keyLine[j])
			} else {
				pubs[pe.PublicKey] = i
			}
		}
	}

	// Prefixes of different peers may nest (the longest match wins), but
	// one prefix routed to two peers would leave the choice to the order
	// of the file. Sorted, equal prefixes are neighbours.
	slices.SortStableFunc(rs, func(a, b routed) int {
		if c := a.pfx.Addr().Compare(b.pfx.Addr()); c != 0 {
			return c
		}
		return a.pfx.Bits() - b.pfx.Bits()
	})
	for i := 0; i < len(rs); {
		j := i + 1
		for j < len(rs) && rs[j].pfx == rs[i].pfx {
			j++
		}
		p.sameRoutes(m, rs[i:j])
		i = j
	}
	p.exits(m, names)
}

// sameRoutes reports each entry of group, entries routing one prefix, that
// routes it to another peer than an earlier line does.
func (p *parser) sameRoutes(m *Mesh, group []routed) {
	if len(group) < 2 {
		return
	}
	group = slices.Clone(group)
	slices.SortStableFunc(group, func(a, b routed) int { return a.line - b.line })
	first := group[0]
	for _, r := range group[1:] {
		if r.peer != first.peer {
			p.errorf(r.line, "%s %s is also %s of %s (line %d); a prefix may be routed to one peer only (nested prefixes are fine: the longest one wins)",
				nameOf(m, r.peer), r.desc, first.desc, nameOf(m, first.peer), first.line)
		}
	}
}

// exits checks every use_exit: it must name another peer, one that says
// exit: true and does not itself use an exit. names maps peer names to
// their index.
func (p *parser) exits(m *Mesh, names map[string]int) {
	var allNames []string
	for n := range names {
		allNames = append(allNames, n)
	}
	slices.Sort(allNames)
	for i := range m.Peers {
		pe := &m.Peers[i]
		if pe.UseExit == "" {
			continue
		}
		j, ok := names[pe.UseExit]
		switch {
		case !ok:
			msg := fmt.Sprintf("%s: use_exit: no peer is named %q", nameOf(m, i), pe.UseExit)
			if s := suggest(pe.UseExit, allNames); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(pe.UseExitLine, "%s", msg)
		case j == i:
			p.errorf(pe.UseExitLine, "%s: use_exit names this peer itself; a node cannot be its own exit", nameOf(m, i))
		case !m.Peers[j].Exit:
			p.errorf(pe.UseExitLine, "%s: use_exit: peer %q (line %d) is not an exit; give it exit: true", nameOf(m, i), pe.UseExit, m.Peers[j].Line)
		case pe.Exit:
			p.errorf(pe.UseExitLine, "%s: use_exit: this peer is an exit itself; an exit sends the world out through its own uplink, not through another exit", nameOf(m, i))
		}
	}
}

// nameOf names peer i in messages.
func nameOf(m *Mesh, i int) string {
	if n := m.Peers[i].Name; n != "" {
		return fmt.Sprintf("peer %q", n)
	}
	return fmt.Sprintf("peers[%d]", i)
}

// clampInt is v as an int, clamped where int has 32 bits: an integer too large
// for it is far outside every range it is checked against anyway.
func clampInt(v int64) int {
	return int(max(min(v, math.MaxInt), math.MinInt))
}

// checkMTU refuses an MTU below the IPv6 minimum when any peer has an IPv6
// address or subnet.
func (p *parser) checkMTU(m *Mesh, line int) {
	if line == 0 || tundev.CheckMTU(m.Interface.MTU, true) == nil {
		return
	}
	for i := range m.Peers {
		for _, a := range m.Peers[i].Prefixes() {
			if a.Addr().Is6() {
				p.errorf(line, "interface.mtu: %v, and %s has the IPv6 prefix %s",
					tundev.CheckMTU(m.Interface.MTU, true), nameOf(m, i), a)
				return
			}
		}
	}
}
