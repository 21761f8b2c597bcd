package impair

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// Limits of a flood: it always ends by itself.
const (
	// MaxFloodDatagrams bounds the datagrams of one flood.
	MaxFloodDatagrams = 10_000_000
	// MaxFloodRate bounds the datagrams sent per second.
	MaxFloodRate = 200_000
	// MaxGarbageSize is the largest garbage datagram.
	MaxGarbageSize = 1400
	// DefaultFloodBurst is how many datagrams go out back to back between
	// pauses when FloodConfig.Burst is 0: sleeping per datagram would cap
	// the rate at the timer's resolution.
	DefaultFloodBurst = 64
	// MaxFloodBurst bounds FloodConfig.Burst.
	MaxFloodBurst = 100_000
	// floodPool is how many distinct initiations a flood builds and then
	// sends in turn, each time under a new sender index and so a new mac1:
	// the target's work is the same for each (its Curve25519 operations
	// come before it can tell the key is unknown), the generator's is not
	// two of them per datagram.
	floodPool = 64
	// floodLinger is how long replies are still counted after the last send.
	floodLinger = 200 * time.Millisecond
)

// FloodConfig describes a flood at one target.
type FloodConfig struct {
	// Target is the address flooded.
	Target netip.AddrPort
	// TargetKey is the target's public key: the initiations carry a valid
	// mac1 for it, so they pass the first check and cost it real work.
	TargetKey keys.Public
	// Garbage datagrams are random bytes of random length (1 to
	// MaxGarbageSize).
	Garbage int
	// Initiations are handshake initiations from a fresh key that belongs
	// to no mesh.
	Initiations int
	// Rate is the number of datagrams sent per second (both kinds), on
	// average.
	Rate int
	// Burst is how many datagrams go out back to back before the pause
	// that keeps the average at Rate (0: DefaultFloodBurst). Large bursts
	// at a moderate rate keep a target's handshake queue long, and so the
	// target under load, for the whole of a long flood.
	Burst int
	// Seed fixes the order of the two kinds, the garbage and the sender
	// indexes (the initiations' keys are fresh each run).
	Seed uint64
}

// FloodResult says what a flood did.
type FloodResult struct {
	Garbage     int     `json:"garbage_sent"`
	Initiations int     `json:"initiations_sent"`
	SendErrors  int     `json:"send_errors"`
	Seconds     float64 `json:"seconds"`
	// Replies counts datagrams that came back, by message type (cookie
	// replies from a target under load, for instance).
	Replies map[string]uint64 `json:"replies"`
}

// Validate reports the first setting that is out of range.
func (c FloodConfig) Validate() error {
	switch {
	case !c.Target.IsValid() || c.Target.Port() == 0:
		return fmt.Errorf("impair: flood target %v: want an address with a port", c.Target)
	case c.Garbage < 0 || c.Initiations < 0 || c.Garbage+c.Initiations > MaxFloodDatagrams:
		return fmt.Errorf("impair: flood of %d garbage datagrams and %d initiations: want 0 to %d in all",
			c.Garbage, c.Initiations, MaxFloodDatagrams)
	case c.Initiations > 0 && c.TargetKey.IsZero():
		return errors.New("impair: flood initiations need the target's public key")
	case c.Rate < 1 || c.Rate > MaxFloodRate:
		return fmt.Errorf("impair: flood rate %d/s: want 1 to %d", c.Rate, MaxFloodRate)
	case c.Burst < 0 || c.Burst > MaxFloodBurst:
		return fmt.Errorf("impair: flood burst %d: want 0 to %d", c.Burst, MaxFloodBurst)
	}
	return nil
}

// Flood sends cfg's datagrams from conn, an unconnected UDP socket, paced at
// cfg.Rate, and counts what comes back. It returns when all are sent and
// replies have had a moment (floodLinger) to arrive, or when ctx ends.
func Flood(ctx context.Context, conn *net.UDPConn, cfg FloodConfig) (FloodResult, error) {
	res := FloodResult{Replies: map[string]uint64{}}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	pool, gen, err := initiationPool(cfg)
	if err != nil {
		return res, err
	}
	replies := make(chan [numTypes]uint64, 1)
	go countReplies(conn, replies)

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x666c6f6f64)) // "flood"
	interval := time.Second / time.Duration(cfg.Rate)
	burst := cfg.Burst
	if burst == 0 {
		burst = DefaultFloodBurst
	}
	buf := make([]byte, max(MaxGarbageSize, noise.MessageInitiationSize))
	start := time.Now()
	garbage, inits := cfg.Garbage, cfg.Initiations
	var sendErr error
	for i := 0; garbage+inits > 0; i++ {
		if i%burst == 0 {
			if err := sleepUntil(ctx, start.Add(time.Duration(i)*interval)); err != nil {
				sendErr = err
				break
			}
		}
		var b []byte
		if rng.IntN(garbage+inits) < inits {
			inits--
			b = buf[:noise.MessageInitiationSize]
			copy(b, pool[res.Initiations%len(pool)])
			binary.LittleEndian.PutUint32(b[4:], rng.Uint32()) // Sender
			gen.AddMACs(b, time.Now())
			res.Initiations++
		} else {
			garbage--
			b = buf[:1+rng.IntN(MaxGarbageSize)]
			for j := 0; j < len(b); j += 8 {
				var w [8]byte
				binary.LittleEndian.PutUint64(w[:], rng.Uint64())
				copy(b[j:], w[:])
			}
			res.Garbage++
		}
		if _, err := conn.WriteToUDPAddrPort(b, cfg.Target); err != nil {
			res.SendErrors++
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if sendErr == nil {
		sleepUntil(ctx, time.Now().Add(floodLinger))
	}
	conn.SetReadDeadline(time.Now())
	for t, n := range <-replies {
		if n > 0 {
			res.Replies[MessageType(t).String()] = n
		}
	}
	return res, sendErr
}

// initiationPool builds the distinct initiations a flood sends in turn, from
// a fresh static key, and the generator that adds their mac1.
func initiationPool(cfg FloodConfig) ([][]byte, *noise.CookieGenerator, error) {
	if cfg.Initiations == 0 {
		return nil, nil, nil
	}
	priv, err := keys.NewPrivate()
	if err != nil {
		return nil, nil, fmt.Errorf("impair: flood key: %w", err)
	}
	hs, err := noise.NewHandshake(noise.NewLocal(priv), cfg.TargetKey, keys.Preshared{})
	if err != nil {
		return nil, nil, fmt.Errorf("impair: flood handshake: %w", err)
	}
	pool := make([][]byte, min(floodPool, cfg.Initiations))
	now := time.Now()
	for i := range pool {
		msg, err := hs.CreateInitiation(now.Add(time.Duration(i)), uint32(i))
		if err != nil {
			return nil, nil, fmt.Errorf("impair: flood initiation: %w", err)
		}
		pool[i] = msg.Marshal(nil)
	}
	return pool, noise.NewCookieGenerator(cfg.TargetKey), nil
}

// countReplies counts datagrams arriving on conn until its read deadline
// passes or it is closed, then sends the counts.
func countReplies(conn *net.UDPConn, out chan<- [numTypes]uint64) {
	var n [numTypes]uint64
	buf := make([]byte, MaxDatagramSize)
	for {
		k, _, err := conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			continue // an ICMP port unreachable reported on the socket
		}
		if err != nil {
			out <- n
			return
		}
		n[TypeOf(buf[:k])]++
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
