package capture

import (
	"testing"

	"github.com/peer-vpn/peer/noise"
)

// TestWireGuardConstants keeps the copy of the wire format in step with
// noise, the package that owns it.
func TestWireGuardConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"initiation type", wgInitiationType, noise.MessageInitiationType},
		{"response type", wgResponseType, noise.MessageResponseType},
		{"cookie reply type", wgCookieReplyType, noise.MessageCookieReplyType},
		{"transport type", wgTransportType, noise.MessageTransportType},
		{"initiation size", wgInitiationSize, noise.MessageInitiationSize},
		{"response size", wgResponseSize, noise.MessageResponseSize},
		{"cookie reply size", wgCookieReplySize, noise.MessageCookieReplySize},
		{"keepalive size", wgKeepaliveSize, noise.MessageKeepaliveSize},
		{"padding multiple", wgPaddingMultiple, noise.PaddingMultiple},
	} {
		if c.got != c.want {
			t.Errorf("%s: capture has %d, noise %d", c.name, c.got, c.want)
		}
	}
}
