package tundev

import (
	"bytes"
	"testing"
)

func TestOpenRejectsBadArgs(t *testing.T) {
	tests := []struct {
		name, driver string
		mtu          int
	}{
		{"tun0", "bogus", 1420},
		{"tun0", "auto", MinMTU - 1},
		{"tun0", "water", 70000},
		{"a-name-that-is-far-too-long-for-any-kernel", "water", 1420},
	}
	for _, tt := range tests {
		if d, err := Open(tt.name, tt.driver, tt.mtu); err == nil {
			d.Close()
			t.Errorf("Open(%q, %q, %d) succeeded", tt.name, tt.driver, tt.mtu)
		} else if !bytes.Contains([]byte(err.Error()), []byte(tt.driver)) {
			t.Errorf("error %q does not name the driver", err)
		}
	}
}
