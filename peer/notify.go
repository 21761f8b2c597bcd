package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The systemd notification protocol (sd_notify(3)): one datagram of
// newline-separated VAR=VALUE lines to the unix socket named by
// $NOTIFY_SOCKET, a path or, with a leading "@", an abstract name. That is
// all go-systemd's daemon.SdNotify does, so it is written out here rather
// than taken as a dependency.
//
// The unit (packaging/peer@.service) is Type=notify with ExecReload sending
// SIGHUP, not Type=notify-reload: Debian 12 ships systemd 252 and
// notify-reload needs 253. The node sends the same messages either way:
// READY=1 once the tunnel carries traffic, RELOADING=1 (with MONOTONIC_USEC,
// which 253 and later want) and READY=1 around every reload, STOPPING=1 when
// it shuts down.

// sdNotify sends state (lines such as "READY=1") to $NOTIFY_SOCKET. Without
// that variable it does nothing: the node was not started by systemd.
func sdNotify(state ...string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(state, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// monotonicUsec is the MONOTONIC_USEC= line systemd ≥253 wants with
// RELOADING=1: CLOCK_MONOTONIC in microseconds, as the manager reads it.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "MONOTONIC_USEC=0"
	}
	return fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/int64(time.Microsecond))
}

// notifyState sends state to the service manager, if any. A failure is
// logged and the node runs on: it serves the mesh whether systemd hears of
// it or not.
func (s system) notifyState(log *slog.Logger, state ...string) {
	if s.notify == nil {
		return
	}
	if err := s.notify(state...); err != nil {
		log.Warn("telling systemd the node's state", "state", state[0], "error", err)
	}
}
