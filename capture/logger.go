package capture

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Logger writes one line per packet, rate limited by a token bucket so that
// a flood can neither fill a disk nor slow the tunnel. Lines are decoded and
// formatted by the caller (only when a token is available) and handed to a
// writer goroutine through a bounded queue; lines refused by the bucket or
// by a full queue are counted, and the count is reported in the log at most
// once a second and when the Logger is closed.
//
// The bucket is driven by the packet timestamps passed to Log, not by a
// wall clock, so it behaves the same on replayed or simulated time.
// Log is safe for concurrent use.
type Logger struct {
	w     io.Writer
	rate  float64 // tokens per second
	burst float64

	mu         sync.Mutex // guards everything below, and sends on lines
	dec        *Decoder
	sum        []byte
	tokens     float64
	last       time.Time // time of the last refill
	lastNotice time.Time
	closed     bool

	suppressed atomic.Uint64 // total lines not written
	unreported atomic.Uint64 // suppressed lines not yet reported in the log

	lines chan *[]byte
	pool  sync.Pool
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	err   error // first write error; read after done is closed
}

// Default rate limit used when NewLogger is given non-positive values.
const (
	DefaultLinesPerSecond = 100
	DefaultLineBurst      = 200
)

// NewLogger returns a Logger writing to w at most perSecond lines per second
// on average with bursts of up to burst lines. Non-positive values select
// DefaultLinesPerSecond and DefaultLineBurst. Close must be called to stop
// its writer goroutine.
func NewLogger(w io.Writer, perSecond, burst int) *Logger {
	if perSecond <= 0 {
		perSecond = DefaultLinesPerSecond
	}
	if burst <= 0 {
		burst = DefaultLineBurst
	}
	l := &Logger{
		w:      w,
		rate:   float64(perSecond),
		burst:  float64(burst),
		tokens: float64(burst),
		dec:    NewDecoder(),
		lines:  make(chan *[]byte, burst),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	l.pool.New = func() any { b := make([]byte, 0, 256); return &b }
	go l.run()
	return l
}

// Log decodes pkt and queues its line, unless the rate limit or a full
// queue says to drop it, in which case it is only counted. It never waits
// for the output.
func (l *Logger) Log(t time.Time, dir Direction, peer string, pkt []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.suppress(1)
		return
	}
	if l.last.IsZero() {
		l.last = t
	} else if dt := t.Sub(l.last); dt > 0 {
		l.tokens = min(l.burst, l.tokens+dt.Seconds()*l.rate)
		l.last = t
	}
	if l.tokens < 1 {
		l.suppress(1)
		return
	}
	l.tokens--

	bp := l.pool.Get().(*[]byte)
	b := (*bp)[:0]
	var noticed uint64
	if l.unreported.Load() > 0 && t.Sub(l.lastNotice) >= time.Second {
		noticed = l.unreported.Swap(0)
		b = appendNotice(b, t, noticed)
		l.lastNotice = t
	}
	l.sum = l.dec.Summarize(l.sum[:0], pkt)
	b = FormatLine(b, t, dir, peer, l.sum)
	b = append(b, '\n')
	*bp = b
	select {
	case l.lines <- bp:
	default:
		l.unreported.Add(noticed)
		l.suppress(1)
		l.pool.Put(bp)
	}
}

func (l *Logger) suppress(n uint64) {
	l.suppressed.Add(n)
	l.unreported.Add(n)
}

// appendNotice appends the line reporting n suppressed packet lines.
func appendNotice(b []byte, t time.Time, n uint64) []byte {
	b = t.AppendFormat(b, TimeLayout)
	b = append(b, " ... "...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, " packet lines suppressed\n"...)
	return b
}

// Suppressed returns the number of packet lines not written so far.
func (l *Logger) Suppressed() uint64 { return l.suppressed.Load() }

func (l *Logger) run() {
	defer close(l.done)
	for {
		select {
		case bp := <-l.lines:
			l.write(bp)
		case <-l.stop:
			for {
				select {
				case bp := <-l.lines:
					l.write(bp)
				default:
					return
				}
			}
		}
	}
}

func (l *Logger) write(bp *[]byte) {
	if l.err == nil {
		if _, err := l.w.Write(*bp); err != nil {
			l.err = fmt.Errorf("write packet log: %w", err)
		}
	}
	l.pool.Put(bp)
}

// Close writes out the queued lines and a final count of suppressed lines,
// stops the writer goroutine and returns the first write error. Packets
// logged after Close are only counted.
func (l *Logger) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		t := l.last
		l.mu.Unlock()
		close(l.stop)
		<-l.done
		if n := l.unreported.Swap(0); n > 0 && l.err == nil {
			if t.IsZero() {
				t = time.Now()
			}
			if _, err := l.w.Write(appendNotice(nil, t, n)); err != nil {
				l.err = fmt.Errorf("write packet log: %w", err)
			}
		}
	})
	return l.err
}
