package main

import (
	"testing"

	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
)

// TestLimitsAgree: netconf, a leaf package that may not import tundev,
// keeps a copy of the device's MTU limits; the copy must not drift.
func TestLimitsAgree(t *testing.T) {
	if netconf.MinMTU != tundev.MinMTU || netconf.MaxMTU != tundev.MaxMTU || netconf.MinMTUIPv6 != tundev.MinMTUIPv6 {
		t.Errorf("netconf MTU limits [%d, %d] (IPv6 %d) differ from tundev's [%d, %d] (IPv6 %d)",
			netconf.MinMTU, netconf.MaxMTU, netconf.MinMTUIPv6, tundev.MinMTU, tundev.MaxMTU, tundev.MinMTUIPv6)
	}
}
