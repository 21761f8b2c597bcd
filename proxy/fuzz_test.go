package proxy

import (
	"bytes"
	"testing"
)

// sameAddr compares SOCKS5 addresses as the wire does: an IPv4-mapped IPv6
// address is sent as IPv4.
func sameAddr(a, b socksAddr) bool {
	return a.Name == b.Name && a.Port == b.Port && a.IP.Unmap() == b.IP.Unmap()
}

// FuzzSOCKS5Request feeds bytes from a client to the greeting and request
// parsers, and to the UDP header parser: they must never panic, and what
// they accept must encode back to an equal value.
func FuzzSOCKS5Request(f *testing.F) {
	for _, seed := range [][]byte{
		{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80},                   // CONNECT 127.0.0.1:80
		append([]byte{5, 2, 0, 2, 5, 1, 0, 3, 4}, "beta\x1f\x90"...), // CONNECT beta:8080
		append([]byte{5, 1, 0, 5, 3, 0, 4}, make([]byte, 18)...),     // UDP ASSOCIATE [::]:0
		{5, 1, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0},                      // BIND
		{5, 1, 2},                                                    // username/password only
		{5, 1, 0, 5, 1, 0, 3, 0, 0, 80},                              // empty name
		{5, 1, 0, 5, 1, 0, 9},                                        // unknown address type
		{4, 1, 0, 80, 127, 0, 0, 1, 0},                               // SOCKS4
		{5, 255},                                                     // short methods
		{5, 0, 5, 1, 0, 3, 255},                                      // short name
		append([]byte{0, 0, 0, 1, 10, 10, 0, 2, 0, 53}, "query"...),  // UDP header
		append([]byte{0, 0, 1, 4}, make([]byte, 18)...),              // UDP fragment
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		if methods, err := readGreeting(r); err == nil {
			if len(methods) != int(data[1]) {
				t.Fatalf("greeting: %d methods, header says %d", len(methods), data[1])
			}
			start := len(data) - r.Len()
			if req, err := readRequest(r); err == nil {
				used := data[start : len(data)-r.Len()]
				again, err := readRequest(bytes.NewReader(appendAddr([]byte{socksVersion, req.Cmd, 0}, req.Dst)))
				if err != nil || again.Cmd != req.Cmd || !sameAddr(again.Dst, req.Dst) {
					t.Fatalf("request % x parsed as %+v, re-encoded parses as %+v, %v", used, req, again, err)
				}
				if req.Dst.Name == "" && !req.Dst.IP.IsValid() {
					t.Fatalf("request % x: no address", used)
				}
			}
		}
		if frag, dst, payload, err := parseUDPHeader(data); err == nil {
			b := append(appendAddr([]byte{0, 0, frag}, dst), payload...)
			frag2, dst2, payload2, err := parseUDPHeader(b)
			if err != nil || frag2 != frag || !sameAddr(dst2, dst) || !bytes.Equal(payload2, payload) {
				t.Fatalf("UDP header % x: re-encoded parses as %d %+v %q, %v", data, frag2, dst2, payload2, err)
			}
		}
	})
}
