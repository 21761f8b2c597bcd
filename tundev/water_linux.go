package tundev

import "github.com/songgao/water"

// waterParams returns water's Linux parameters for a TUN called name
// (empty lets the kernel pick tunN).
func waterParams(name string) water.PlatformSpecificParams {
	return water.PlatformSpecificParams{Name: name}
}
