package tundev

import (
	"strings"
	"testing"
)

// TestCheckMTU walks the boundaries of the device's MTU range, with and
// without IPv6.
func TestCheckMTU(t *testing.T) {
	for _, tc := range []struct {
		mtu  int
		ipv6 bool
		want string // "" when accepted
	}{
		{MinMTU - 1, false, "71 is below the minimum 72"},
		{MinMTU, false, ""},
		{MinMTUIPv6 - 1, false, ""},
		{MinMTUIPv6 - 1, true, "1279 is below 1280, the IPv6 minimum"},
		{MinMTUIPv6, true, ""},
		{MaxMTU, true, ""},
		{MaxMTU + 1, false, "65536 is above the maximum 65535"},
		{MaxMTU + 1, true, "65536 is above the maximum 65535"},
	} {
		err := CheckMTU(tc.mtu, tc.ipv6)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want) {
			t.Errorf("CheckMTU(%d, %v) = %v, want %q", tc.mtu, tc.ipv6, err, tc.want)
		}
	}
}

// TestCheckDriver: the names Open accepts, and no other.
func TestCheckDriver(t *testing.T) {
	for _, d := range []string{DriverAuto, DriverWater, DriverOffload} {
		if err := CheckDriver(d); err != nil {
			t.Errorf("CheckDriver(%q): %v", d, err)
		}
	}
	for _, d := range []string{"", DriverMemory, "Water", "tap"} {
		if err := CheckDriver(d); err == nil || !strings.Contains(err.Error(), "use one of auto, water, offload") {
			t.Errorf("CheckDriver(%q) = %v", d, err)
		}
	}
}
