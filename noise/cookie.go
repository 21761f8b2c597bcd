package noise

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/peer-vpn/peer/keys"
)

// ErrNoMAC1 is returned by CookieGenerator.ConsumeReply when no handshake
// message was sent since the last cookie (so no reply can be expected).
var ErrNoMAC1 = errors.New("noise: cookie reply without a handshake message awaiting one")

const macSize = blake2s.Size128

// labelKey returns HASH(label || pub).
func labelKey(label string, pub keys.Public) [blake2s.Size]byte {
	d, _ := blake2s.New256(nil)
	d.Write([]byte(label))
	d.Write(pub[:])
	var out [blake2s.Size]byte
	d.Sum(out[:0])
	return out
}

// mac returns the keyed BLAKE2s-128 of the concatenated inputs.
func mac(key []byte, in ...[]byte) [macSize]byte {
	m, err := blake2s.New128(key)
	if err != nil { // only for a key longer than 32 bytes: never here
		panic(fmt.Sprintf("noise: blake2s mac key: %v", err))
	}
	for _, b := range in {
		m.Write(b)
	}
	var out [macSize]byte
	m.Sum(out[:0])
	return out
}

// macOffsets returns where mac1 and mac2 start in a handshake message, and
// false if msg is not an initiation or response by its length.
func macOffsets(msg []byte) (mac1, mac2 int, ok bool) {
	if len(msg) != MessageInitiationSize && len(msg) != MessageResponseSize {
		return 0, 0, false
	}
	return len(msg) - 2*macSize, len(msg) - macSize, true
}

// srcBytes encodes a source address for the cookie the way wireguard-go
// does: the IP (4 bytes for IPv4, including IPv4-mapped IPv6, else 16)
// followed by the port in little-endian order. Only this node ever computes
// its own cookies, so the encoding just has to be consistent.
func srcBytes(src netip.AddrPort) ([18]byte, int) {
	var b [18]byte
	a := src.Addr().Unmap()
	n := copy(b[:], a.AsSlice())
	b[n] = byte(src.Port())
	b[n+1] = byte(src.Port() >> 8)
	return b, n + 2
}

// CookieChecker verifies mac1 and mac2 of incoming handshake messages and
// creates cookie replies. There is one per local identity; it is safe for
// concurrent use.
type CookieChecker struct {
	mac1Key   [blake2s.Size]byte
	cookieKey [chacha20poly1305.KeySize]byte

	mu        sync.RWMutex
	secret    [blake2s.Size]byte
	secretSet time.Time
	hasSecret bool
}

// NewCookieChecker returns the checker for the local public key.
func NewCookieChecker(local keys.Public) *CookieChecker {
	return &CookieChecker{mac1Key: labelKey(LabelMAC1, local), cookieKey: labelKey(LabelCookie, local)}
}

// CheckMAC1 reports whether msg, a whole marshalled initiation or response,
// carries a valid mac1 for the local public key.
func (c *CookieChecker) CheckMAC1(msg []byte) bool {
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	want := mac(c.mac1Key[:], msg[:o1])
	return constantTimeEqual(want[:], msg[o1:o2])
}

// cookie returns the current cookie for src; the caller holds c.mu.
func (c *CookieChecker) cookie(src netip.AddrPort) [macSize]byte {
	b, n := srcBytes(src)
	return mac(c.secret[:], b[:n])
}

func (c *CookieChecker) secretValid(now time.Time) bool {
	return c.hasSecret && now.Sub(c.secretSet) <= CookieRefreshTime
}

// CheckMAC2 reports whether msg, a whole marshalled initiation or response
// received from src, carries a valid mac2: one made with the cookie this
// checker would give src now. It is false when no cookie secret younger
// than CookieRefreshTime exists (no cookie reply sent recently).
func (c *CookieChecker) CheckMAC2(msg []byte, src netip.AddrPort, now time.Time) bool {
	_, o2, ok := macOffsets(msg)
	if !ok {
		return false
	}
	c.mu.RLock()
	if !c.secretValid(now) {
		c.mu.RUnlock()
		return false
	}
	ck := c.cookie(src)
	c.mu.RUnlock()
	want := mac(ck[:], msg[:o2])
	return constantTimeEqual(want[:], msg[o2:])
}

// CreateReply returns the cookie reply to msg, a whole marshalled
// initiation or response from src with a valid mac1; receiver is msg's
// Sender index. The cookie secret is renewed when older than
// CookieRefreshTime.
func (c *CookieChecker) CreateReply(msg []byte, receiver uint32, src netip.AddrPort, now time.Time) (*CookieReply, error) {
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return nil, fmt.Errorf("noise: creating cookie reply: message of %d bytes is no handshake message: %w", len(msg), ErrMessageSize)
	}
	reply := &CookieReply{Receiver: receiver}
	if _, err := rand.Read(reply.Nonce[:]); err != nil {
		return nil, fmt.Errorf("noise: creating cookie reply: nonce: %w", err)
	}

	c.mu.Lock()
	if !c.secretValid(now) {
		if _, err := rand.Read(c.secret[:]); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("noise: creating cookie reply: secret: %w", err)
		}
		c.secretSet, c.hasSecret = now, true
	}
	ck := c.cookie(src)
	c.mu.Unlock()

	x, _ := chacha20poly1305.NewX(c.cookieKey[:])
	x.Seal(reply.Cookie[:0], reply.Nonce[:], ck[:], msg[o1:o2])
	return reply, nil
}

// CookieGenerator adds mac1 and mac2 to outgoing handshake messages toward
// one remote peer and takes in that peer's cookie replies. It is safe for
// concurrent use.
type CookieGenerator struct {
	mac1Key   [blake2s.Size]byte
	cookieKey [chacha20poly1305.KeySize]byte

	mu          sync.Mutex
	lastMAC1    [macSize]byte
	hasLastMAC1 bool
	cookie      [macSize]byte
	cookieSet   time.Time
	hasCookie   bool
}

// NewCookieGenerator returns the generator for messages to remote.
func NewCookieGenerator(remote keys.Public) *CookieGenerator {
	return &CookieGenerator{mac1Key: labelKey(LabelMAC1, remote), cookieKey: labelKey(LabelCookie, remote)}
}

// AddMACs writes mac1 into msg, a whole marshalled initiation or response,
// and mac2 too if a cookie younger than CookieRefreshTime is held (else
// mac2 is zeroed). It does nothing to a message of another length.
func (g *CookieGenerator) AddMACs(msg []byte, now time.Time) {
	o1, o2, ok := macOffsets(msg)
	if !ok {
		return
	}
	m1 := mac(g.mac1Key[:], msg[:o1])
	copy(msg[o1:o2], m1[:])

	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastMAC1, g.hasLastMAC1 = m1, true
	if g.hasCookie && now.Sub(g.cookieSet) < CookieRefreshTime {
		m2 := mac(g.cookie[:], msg[:o2])
		copy(msg[o2:], m2[:])
	} else {
		clear(msg[o2:])
	}
}

// ConsumeReply decrypts a cookie reply, using the last mac1 sent as
// additional data, and keeps the cookie for later AddMACs calls. Only one
// reply is accepted per message sent.
func (g *CookieGenerator) ConsumeReply(msg *CookieReply, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.hasLastMAC1 {
		return ErrNoMAC1
	}
	x, _ := chacha20poly1305.NewX(g.cookieKey[:])
	var ck [macSize]byte
	if _, err := x.Open(ck[:0], msg.Nonce[:], msg.Cookie[:], g.lastMAC1[:]); err != nil {
		return fmt.Errorf("noise: consuming cookie reply: %w", ErrDecrypt)
	}
	g.cookie, g.cookieSet, g.hasCookie = ck, now, true
	g.hasLastMAC1 = false
	return nil
}
