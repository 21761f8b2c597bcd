package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// SOCKS5 protocol constants, with RFC 1928's names.
const (
	socksVersion = 5

	methodNoAuth       = 0x00 // NO AUTHENTICATION REQUIRED
	methodNoAcceptable = 0xFF // NO ACCEPTABLE METHODS

	cmdConnect      = 0x01
	cmdBind         = 0x02
	cmdUDPAssociate = 0x03

	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04

	repSucceeded           = 0x00
	repGeneralFailure      = 0x01
	repNetworkUnreachable  = 0x03
	repHostUnreachable     = 0x04
	repConnectionRefused   = 0x05
	repCommandNotSupported = 0x07
	repAddrTypeNotSupport  = 0x08
)

// Offsets in a SOCKS5 UDP request header: RSV(2) FRAG(1) ATYP(1) DST.ADDR DST.PORT.
const (
	udpHeaderFrag = 2
	udpHeaderAtyp = 3
)

// errAddrType is a request with an address type RFC 1928 does not define;
// it is answered with repAddrTypeNotSupport.
var errAddrType = errors.New("socks5: unsupported address type")

// socksAddr is a SOCKS5 address: an IP (Name empty) or a domain name.
type socksAddr struct {
	IP   netip.Addr
	Name string
	Port uint16
}

// String returns host:port, the form Dialer.Dial takes.
func (a socksAddr) String() string {
	host := a.Name
	if host == "" {
		host = a.IP.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(a.Port)))
}

// socksRequest is a client's request after negotiation.
type socksRequest struct {
	Cmd byte
	Dst socksAddr
}

// readGreeting reads a client's version identifier/method selection message
// (VER NMETHODS METHODS) and returns the methods it offers.
func readGreeting(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("socks5: reading greeting: %w", err)
	}
	if hdr[0] != socksVersion {
		return nil, fmt.Errorf("socks5: greeting: version %d, want %d", hdr[0], socksVersion)
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return nil, fmt.Errorf("socks5: reading greeting methods: %w", err)
	}
	return methods, nil
}

// readRequest reads a request (VER CMD RSV ATYP DST.ADDR DST.PORT). An
// unknown address type is errAddrType, with the command still returned.
func readRequest(r io.Reader) (socksRequest, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return socksRequest{}, fmt.Errorf("socks5: reading request: %w", err)
	}
	if hdr[0] != socksVersion {
		return socksRequest{}, fmt.Errorf("socks5: request: version %d, want %d", hdr[0], socksVersion)
	}
	req := socksRequest{Cmd: hdr[1]}
	dst, err := readAddr(r, hdr[3])
	if err != nil {
		return req, err
	}
	req.Dst = dst
	return req, nil
}

// readAddr reads DST.ADDR and DST.PORT of address type atyp.
func readAddr(r io.Reader, atyp byte) (socksAddr, error) {
	var a socksAddr
	var buf [255 + 2]byte // the longest: a 255-byte name and the port
	var n int
	switch atyp {
	case atypIPv4:
		n = 4
	case atypIPv6:
		n = 16
	case atypDomain:
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return a, fmt.Errorf("socks5: reading name length: %w", err)
		}
		if n = int(buf[0]); n == 0 {
			return a, errors.New("socks5: empty name")
		}
	default:
		return a, fmt.Errorf("%w %#x", errAddrType, atyp)
	}
	if _, err := io.ReadFull(r, buf[:n+2]); err != nil {
		return a, fmt.Errorf("socks5: reading address: %w", err)
	}
	switch atyp {
	case atypIPv4:
		a.IP = netip.AddrFrom4([4]byte(buf[:4]))
	case atypIPv6:
		a.IP = netip.AddrFrom16([16]byte(buf[:16]))
	default:
		a.Name = string(buf[:n])
	}
	a.Port = binary.BigEndian.Uint16(buf[n:])
	return a, nil
}

// appendAddr appends ATYP, the address and the port of a. An IPv4-mapped
// address goes as IPv4, the form a client expects from a v4 peer.
func appendAddr(b []byte, a socksAddr) []byte {
	switch {
	case a.Name != "":
		b = append(b, atypDomain, byte(len(a.Name)))
		b = append(b, a.Name...)
	case a.IP.Unmap().Is4():
		ip := a.IP.Unmap().As4()
		b = append(b, atypIPv4)
		b = append(b, ip[:]...)
	case a.IP.Is6():
		ip := a.IP.As16()
		b = append(b, atypIPv6)
		b = append(b, ip[:]...)
	default: // no address: 0.0.0.0
		b = append(b, atypIPv4, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(b, a.Port)
}

// appendReply appends a reply (VER REP RSV ATYP BND.ADDR BND.PORT).
func appendReply(b []byte, rep byte, bnd netip.AddrPort) []byte {
	b = append(b, socksVersion, rep, 0)
	return appendAddr(b, socksAddr{IP: bnd.Addr(), Port: bnd.Port()})
}

// parseUDPHeader splits a datagram from a UDP ASSOCIATE client into its
// header's FRAG and destination, and the payload.
func parseUDPHeader(b []byte) (frag byte, dst socksAddr, payload []byte, err error) {
	if len(b) < udpHeaderAtyp+1 {
		return 0, dst, nil, errors.New("socks5: short UDP header")
	}
	r := byteReader{b: b[udpHeaderAtyp+1:]}
	dst, err = readAddr(&r, b[udpHeaderAtyp])
	if err != nil {
		return 0, dst, nil, err
	}
	return b[udpHeaderFrag], dst, r.b, nil
}

// appendUDPHeader appends the header of a datagram relayed to a UDP
// ASSOCIATE client from src.
func appendUDPHeader(b []byte, src netip.AddrPort) []byte {
	b = append(b, 0, 0, 0) // RSV, FRAG
	return appendAddr(b, socksAddr{IP: src.Addr(), Port: src.Port()})
}

// byteReader reads a slice without copying what is left (unlike
// bytes.Reader, whose rest is not exposed).
type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
