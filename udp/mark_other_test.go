//go:build !linux

package udp

import (
	"errors"
	"testing"
)

// TestSetMarkUnsupported: without SO_MARK, SetMark says so in a way the
// daemon can test for.
func TestSetMarkUnsupported(t *testing.T) {
	c := listenT(t, Listen)
	if err := c.(Marker).SetMark(51820); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("SetMark = %v, want errors.ErrUnsupported", err)
	}
}
