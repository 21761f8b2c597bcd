package meshstore

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/peer-vpn/peer/config"
)

// Key names under the prefix.
const (
	settingsKey = "/mesh"
	peersDir    = "/peers/"
)

// settingsYAML is PREFIX/mesh: the top level of a mesh file without peers.
type settingsYAML struct {
	Interface      ifaceYAML    `yaml:"interface"`
	PrivateKeyFile string       `yaml:"private_key_file,omitempty"`
	Capture        *captureYAML `yaml:"capture,omitempty"`
	LogLevel       string       `yaml:"log_level,omitempty"`
	Metrics        string       `yaml:"metrics,omitempty"`
	TrustedSigners []string     `yaml:"trusted_signers,omitempty,flow"`
}

type ifaceYAML struct {
	Name   string `yaml:"name"`
	MTU    int    `yaml:"mtu"`
	Driver string `yaml:"driver"`
}

type captureYAML struct {
	Pcap       string `yaml:"pcap,omitempty"`
	Outer      bool   `yaml:"outer,omitempty"`
	LogPackets bool   `yaml:"log_packets,omitempty"`
	MaxSize    int64  `yaml:"max_size,omitempty"`
	MaxFiles   int    `yaml:"max_files,omitempty"`
}

// peerYAML is PREFIX/peers/NAME: one item of peers:.
type peerYAML struct {
	Name             string   `yaml:"name"`
	PublicKey        string   `yaml:"public_key"`
	Address          []string `yaml:"address,flow"`
	Subnets          []string `yaml:"subnets,omitempty,flow"`
	Endpoint         string   `yaml:"endpoint,omitempty"`
	Keepalive        string   `yaml:"keepalive,omitempty"`
	PresharedKeyFile string   `yaml:"preshared_key_file,omitempty"`
	Exit             bool     `yaml:"exit,omitempty"`
	UseExit          string   `yaml:"use_exit,omitempty"`
	Relay            bool     `yaml:"relay,omitempty"`
}

func marshal(v any) []byte {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		// Only plain strings, numbers and bools go in: this cannot fail.
		panic(fmt.Sprintf("meshstore: encoding YAML: %v", err))
	}
	enc.Close()
	return b.Bytes()
}

func encodeSettings(m *config.Mesh) []byte {
	s := settingsYAML{
		Interface:      ifaceYAML{m.Interface.Name, m.Interface.MTU, m.Interface.Driver},
		PrivateKeyFile: m.PrivateKeyFile,
		LogLevel:       m.LogLevel,
		Metrics:        m.Metrics,
	}
	for _, k := range m.TrustedSigners {
		s.TrustedSigners = append(s.TrustedSigners, config.SignerString(k))
	}
	if c := m.Capture; c != (config.Capture{}) {
		s.Capture = &captureYAML{c.Pcap, c.Outer, c.LogPackets, c.MaxSize, c.MaxFiles}
	}
	return marshal(s)
}

func encodePeer(p *config.Peer) []byte {
	y := peerYAML{
		Name:             p.Name,
		PublicKey:        p.PublicKey.String(),
		Endpoint:         p.Endpoint,
		PresharedKeyFile: p.PresharedKeyFile,
		Exit:             p.Exit,
		UseExit:          p.UseExit,
		Relay:            p.Relay,
	}
	for _, a := range p.Addresses {
		y.Address = append(y.Address, a.String())
	}
	for _, s := range p.Subnets {
		y.Subnets = append(y.Subnets, s.String())
	}
	if p.Keepalive > 0 {
		y.Keepalive = fmt.Sprintf("%ds", p.Keepalive/time.Second)
	}
	return marshal(y)
}

// encode returns the keys and values that store m under prefix.
func encode(prefix string, m *config.Mesh) map[string][]byte {
	kv := map[string][]byte{prefix + settingsKey: encodeSettings(m)}
	for i := range m.Peers {
		kv[prefix+peersDir+m.Peers[i].Name] = encodePeer(&m.Peers[i])
	}
	return kv
}

// checkOrder refuses a mesh whose meaning changes when its peers are put in
// name order: a pair of peers uses the preshared_key_file of whichever is
// listed first, so two peers with different files, listed against name
// order, would get the other file's key from etcd.
func checkOrder(m *config.Mesh) error {
	var errs config.ErrorList
	for i := range m.Peers {
		a := &m.Peers[i]
		for j := i + 1; j < len(m.Peers); j++ {
			b := &m.Peers[j]
			if a.PresharedKeyFile == "" || b.PresharedKeyFile == "" || a.PresharedKeyFile == b.PresharedKeyFile || a.Name < b.Name {
				continue
			}
			errs = append(errs, &config.Error{File: m.File, Line: b.Line, Msg: fmt.Sprintf(
				"peers %s and %s have different preshared_key_files; etcd orders peers by name, so the pair would use %s's instead of %s's: list %s first, or give both the same file",
				a.Name, b.Name, b.Name, a.Name, b.Name)})
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(x, y *config.Error) int { return cmp.Compare(x.Line, y.Line) })
		return errs
	}
	return nil
}

// block is one key's part of the document decode assembles.
type block struct {
	key   string
	first int // line of its first line in the document
	lines int
}

// decode assembles the mesh file stored as kv (keys under prefix: the
// settings and the peers, by name) and parses it with config.Parse. An
// error in a value names its key and the line in that value. The document
// starts with head (a comment) when head is not "".
func decode(t Target, kv map[string][]byte, head string) ([]byte, *config.Mesh, error) {
	settings, ok := kv[t.Prefix+settingsKey]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no mesh there (no key %s)", t.URL(), t.Prefix+settingsKey)
	}
	var peerKeys []string
	for k := range kv {
		if strings.HasPrefix(k, t.Prefix+peersDir) {
			peerKeys = append(peerKeys, k)
		}
	}
	slices.Sort(peerKeys)

	var doc bytes.Buffer
	var blocks []block
	line := 1
	add := func(key string, val []byte, indentFirst, indentRest string) error {
		var n yaml.Node
		if err := yaml.Unmarshal(val, &n); err != nil {
			return &config.Error{File: key, Msg: "damaged entry: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
			return &config.Error{File: key, Msg: "damaged entry: not a YAML mapping"}
		}
		text := strings.TrimRight(string(val), "\n")
		lines := strings.Split(text, "\n")
		blocks = append(blocks, block{key, line, len(lines)})
		for i, l := range lines {
			if i == 0 {
				doc.WriteString(indentFirst)
			} else if l != "" {
				doc.WriteString(indentRest)
			}
			doc.WriteString(l)
			doc.WriteByte('\n')
		}
		line += len(lines)
		return nil
	}
	if head != "" {
		doc.WriteString(head + "\n")
		line += strings.Count(head, "\n") + 1
	}
	if err := add(t.Prefix+settingsKey, settings, "", ""); err != nil {
		return nil, nil, err
	}
	doc.WriteString("peers:\n")
	line++
	for _, k := range peerKeys {
		if err := add(k, kv[k], "  - ", "    "); err != nil {
			return nil, nil, err
		}
	}
	m, err := config.Parse(t.URL(), doc.Bytes())
	if err != nil {
		if l, ok := err.(config.ErrorList); ok {
			for _, e := range l {
				for _, b := range blocks {
					if e.Line >= b.first && e.Line < b.first+b.lines {
						e.File, e.Line = b.key, e.Line-b.first+1
					}
				}
			}
		}
		return nil, nil, err
	}
	for i, k := range peerKeys {
		if name := strings.TrimPrefix(k, t.Prefix+peersDir); m.Peers[i].Name != name {
			return nil, nil, &config.Error{File: k, Line: 1, Msg: fmt.Sprintf("damaged entry: holds peer %q, but the key names %q", m.Peers[i].Name, name)}
		}
	}
	return doc.Bytes(), m, nil
}
