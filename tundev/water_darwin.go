package tundev

import "github.com/songgao/water"

// waterParams returns water's darwin parameters: the system utun driver, with
// name empty (the kernel picks utunN) or of the form utunN.
func waterParams(name string) water.PlatformSpecificParams {
	return water.PlatformSpecificParams{Name: name, Driver: water.MacOSDriverSystem}
}
