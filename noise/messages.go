package noise

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMessageSize is wrapped by Unmarshal errors for a message of the wrong length.
var ErrMessageSize = errors.New("noise: wrong message size")

// ErrMessageType is wrapped by Unmarshal errors for a message whose type
// field does not match (including non-zero reserved bytes).
var ErrMessageType = errors.New("noise: wrong message type")

// Type returns the message type of msg: its first four bytes read as a
// little-endian uint32. It reports false if msg is shorter than four bytes or
// the three reserved bytes after the type byte are not zero.
func Type(msg []byte) (uint32, bool) {
	if len(msg) < 4 || msg[1]|msg[2]|msg[3] != 0 {
		return 0, false
	}
	return uint32(msg[0]), true
}

// Initiation is the first handshake message, sent by the initiator
// (whitepaper section 5.4.2).
type Initiation struct {
	Sender    uint32   // initiator's index for this handshake
	Ephemeral [32]byte // initiator's ephemeral public key
	Static    [48]byte // initiator's static public key, encrypted
	Timestamp [28]byte // TAI64N timestamp, encrypted
	MAC1      [16]byte // keyed with the responder's public key
	MAC2      [16]byte // keyed with a cookie, or zero
}

// Response is the second handshake message, sent by the responder
// (whitepaper section 5.4.3).
type Response struct {
	Sender    uint32   // responder's index for this session
	Receiver  uint32   // the initiation's Sender
	Ephemeral [32]byte // responder's ephemeral public key
	Empty     [16]byte // AEAD tag over an empty plaintext
	MAC1      [16]byte // keyed with the initiator's public key
	MAC2      [16]byte // keyed with a cookie, or zero
}

// CookieReply answers a handshake message when the responder is under load
// (whitepaper section 5.4.7).
type CookieReply struct {
	Receiver uint32   // the Sender of the message being answered
	Nonce    [24]byte // XChaCha20-Poly1305 nonce
	Cookie   [32]byte // encrypted 16-byte cookie plus tag
}

func appendHeader(b []byte, typ uint32) []byte {
	return binary.LittleEndian.AppendUint32(b, typ)
}

func checkMessage(b []byte, size int, typ uint32, name string) error {
	if len(b) != size {
		return fmt.Errorf("noise: %s is %d bytes, want %d: %w", name, len(b), size, ErrMessageSize)
	}
	if t, ok := Type(b); !ok || t != typ {
		return fmt.Errorf("noise: %s has type field %#x, want %d: %w", name, binary.LittleEndian.Uint32(b), typ, ErrMessageType)
	}
	return nil
}

// Marshal appends the MessageInitiationSize-byte wire form of m to b and
// returns the extended slice. Pass buf[:0] to write in place.
func (m *Initiation) Marshal(b []byte) []byte {
	b = appendHeader(b, MessageInitiationType)
	b = binary.LittleEndian.AppendUint32(b, m.Sender)
	b = append(b, m.Ephemeral[:]...)
	b = append(b, m.Static[:]...)
	b = append(b, m.Timestamp[:]...)
	b = append(b, m.MAC1[:]...)
	return append(b, m.MAC2[:]...)
}

// Unmarshal parses b, which must be exactly one initiation message.
func (m *Initiation) Unmarshal(b []byte) error {
	if err := checkMessage(b, MessageInitiationSize, MessageInitiationType, "initiation"); err != nil {
		return err
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	b = b[8:]
	b = b[copy(m.Ephemeral[:], b):]
	b = b[copy(m.Static[:], b):]
	b = b[copy(m.Timestamp[:], b):]
	b = b[copy(m.MAC1[:], b):]
	copy(m.MAC2[:], b)
	return nil
}

// Marshal appends the MessageResponseSize-byte wire form of m to b and
// returns the extended slice. Pass buf[:0] to write in place.
func (m *Response) Marshal(b []byte) []byte {
	b = appendHeader(b, MessageResponseType)
	b = binary.LittleEndian.AppendUint32(b, m.Sender)
	b = binary.LittleEndian.AppendUint32(b, m.Receiver)
	b = append(b, m.Ephemeral[:]...)
	b = append(b, m.Empty[:]...)
	b = append(b, m.MAC1[:]...)
	return append(b, m.MAC2[:]...)
}

// Unmarshal parses b, which must be exactly one response message.
func (m *Response) Unmarshal(b []byte) error {
	if err := checkMessage(b, MessageResponseSize, MessageResponseType, "response"); err != nil {
		return err
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	m.Receiver = binary.LittleEndian.Uint32(b[8:])
	b = b[12:]
	b = b[copy(m.Ephemeral[:], b):]
	b = b[copy(m.Empty[:], b):]
	b = b[copy(m.MAC1[:], b):]
	copy(m.MAC2[:], b)
	return nil
}

// Marshal appends the MessageCookieReplySize-byte wire form of m to b and
// returns the extended slice. Pass buf[:0] to write in place.
func (m *CookieReply) Marshal(b []byte) []byte {
	b = appendHeader(b, MessageCookieReplyType)
	b = binary.LittleEndian.AppendUint32(b, m.Receiver)
	b = append(b, m.Nonce[:]...)
	return append(b, m.Cookie[:]...)
}

// Unmarshal parses b, which must be exactly one cookie reply message.
func (m *CookieReply) Unmarshal(b []byte) error {
	if err := checkMessage(b, MessageCookieReplySize, MessageCookieReplyType, "cookie reply"); err != nil {
		return err
	}
	m.Receiver = binary.LittleEndian.Uint32(b[4:])
	copy(m.Nonce[:], b[8:])
	copy(m.Cookie[:], b[8+len(m.Nonce):])
	return nil
}

// ParseTransportHeader returns the receiver index and counter of a transport
// data message. It reports false if msg is shorter than a keepalive (header
// plus tag) or is not of type MessageTransportType.
func ParseTransportHeader(msg []byte) (receiver uint32, counter uint64, ok bool) {
	if len(msg) < MessageKeepaliveSize {
		return 0, 0, false
	}
	if t, ok := Type(msg); !ok || t != MessageTransportType {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint32(msg[4:]), binary.LittleEndian.Uint64(msg[8:]), true
}
