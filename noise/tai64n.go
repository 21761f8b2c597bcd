package noise

import (
	"encoding/binary"
	"time"
)

// tai64Base is 2^62 plus the 10-second TAI-UTC offset of 1970, as the
// WireGuard implementations use it.
const tai64Base = 0x400000000000000a

// TimestampSize is the length of a TAI64N timestamp.
const TimestampSize = 12

// TAI64N returns the 12-byte TAI64N label of t: big-endian seconds since
// 1970 plus 2^62+10, then big-endian nanoseconds. Two labels compare in time
// order with bytes.Compare.
func TAI64N(t time.Time) [TimestampSize]byte {
	var b [TimestampSize]byte
	binary.BigEndian.PutUint64(b[:8], uint64(tai64Base+t.Unix()))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return b
}

// whitenMask clears the low bits of the nanoseconds so a timestamp does not
// leak fine-grained timing: 2^24 ns is the largest power of two below
// 1s/50, the initiation rate limit, matching the reference implementations.
const whitenMask = 1<<24 - 1

// whitened returns t with its nanoseconds rounded down to a multiple of 2^24.
func whitened(t time.Time) time.Time {
	ns := t.Nanosecond()
	return t.Add(-time.Duration(ns & whitenMask))
}
