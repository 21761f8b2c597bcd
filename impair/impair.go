// Package impair is a seeded userspace UDP impairment relay for fault tests:
// it forwards datagrams between the clients of one address and one upstream
// address, dropping, duplicating, reordering and delaying them, and counts
// what it did per WireGuard message type. The kernel of our test machines has
// no netem qdisc; this relay stands in for it, and one seed makes a run's
// decisions reproducible.
//
// It also holds a bounded flood generator (Flood): garbage datagrams and
// handshake initiations from a key that belongs to no mesh.
//
// It is a test tool: nothing in the daemon imports it.
package impair

import (
	"errors"
	"fmt"
	"time"
)

// Defaults and limits of the relay.
const (
	// DefaultMaxHold is how long a datagram held back for reordering waits
	// for the later datagrams that are to overtake it before it is sent
	// anyway, so a flow that goes quiet is not stalled.
	DefaultMaxHold = 2 * time.Millisecond
	// MaxReorder is the largest reordering window accepted.
	MaxReorder = 1024
	// MaxDelay is the largest added delay accepted.
	MaxDelay = 10 * time.Second
	// MaxDatagramSize is the largest datagram relayed (the UDP maximum).
	MaxDatagramSize = 65535
)

// Config says what the relay does to every datagram, in each direction
// independently. The zero value forwards everything unchanged.
type Config struct {
	// Loss is the probability that a datagram is dropped.
	Loss float64 `json:"loss"`
	// Duplicate is the probability that a datagram not dropped is sent
	// twice. The copy is never dropped, so every copy reaches the receiver
	// and must be rejected there (by WireGuard's replay window).
	Duplicate float64 `json:"duplicate"`
	// Reorder is the reordering window: a datagram held back is overtaken
	// by 1 to Reorder-1 later datagrams of its direction (uniformly
	// chosen), so none moves more than Reorder-1 places. 0 or 1: none.
	Reorder int `json:"reorder"`
	// ReorderShare is the probability that a datagram (or copy) is held
	// back when Reorder is 2 or more.
	ReorderShare float64 `json:"reorder_share"`
	// MaxHold bounds how long a held datagram waits; 0 means DefaultMaxHold.
	MaxHold time.Duration `json:"max_hold_ns"`
	// Delay is added to every datagram, after reordering.
	Delay time.Duration `json:"delay_ns"`
	// Seed drives every random decision: the same seed and the same
	// datagrams arriving in each direction give the same decisions.
	Seed uint64 `json:"seed"`
}

// Validate reports the first setting that is out of range.
func (c Config) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", c.Loss}, {"duplicate", c.Duplicate}, {"reorder share", c.ReorderShare}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("impair: %s %v: want a probability from 0 to 1", p.name, p.v)
		}
	}
	if c.Reorder < 0 || c.Reorder > MaxReorder {
		return fmt.Errorf("impair: reorder window %d: want 0 to %d", c.Reorder, MaxReorder)
	}
	if c.Reorder >= 2 && c.ReorderShare == 0 {
		return errors.New("impair: a reorder window needs a reorder share above 0")
	}
	if c.Reorder < 2 && c.ReorderShare > 0 {
		return errors.New("impair: a reorder share needs a reorder window of 2 or more")
	}
	if c.MaxHold < 0 || c.MaxHold > MaxDelay {
		return fmt.Errorf("impair: max hold %v: want 0 to %v", c.MaxHold, MaxDelay)
	}
	if c.Delay < 0 || c.Delay > MaxDelay {
		return fmt.Errorf("impair: delay %v: want 0 to %v", c.Delay, MaxDelay)
	}
	return nil
}

func (c Config) maxHold() time.Duration {
	if c.MaxHold == 0 {
		return DefaultMaxHold
	}
	return c.MaxHold
}

// MessageType is a WireGuard message type as the relay classifies a
// datagram: by its first byte alone.
type MessageType int

// The message types counted, in WireGuard's numbering (Other for the rest).
const (
	Other      MessageType = iota // first byte 0 or 5-255, or an empty datagram
	Initiation                    // 1: handshake initiation
	Response                      // 2: handshake response
	Cookie                        // 3: cookie reply
	Transport                     // 4: transport data
	numTypes
)

var typeNames = [numTypes]string{"other", "initiation", "response", "cookie", "transport"}

// String returns the name used in Stats' JSON.
func (t MessageType) String() string {
	if t < 0 || t >= numTypes {
		return fmt.Sprintf("MessageType(%d)", int(t))
	}
	return typeNames[t]
}

// TypeOf classifies a datagram by its first byte.
func TypeOf(d []byte) MessageType {
	if len(d) == 0 || d[0] < byte(Initiation) || d[0] > byte(Transport) {
		return Other
	}
	return MessageType(d[0])
}
