package config_test

import (
	"fmt"

	"github.com/peer-vpn/peer/config"
)

// Parse reports every problem with its line.
func ExampleParse() {
	_, err := config.Parse("peers.yaml", []byte(`interface:
  mtu: 9000000
peers:
  - name: alpha
    pubic_key: mhahAQRhqTQAVk1F9RDhxow+sCHpzwHyqSG1UUUWNyU=
    address: 10.10.0.1/24
`))
	fmt.Println(err)
	// Output:
	// peers.yaml:2: interface.mtu: 9000000 is above the maximum 65535
	// peers.yaml:4: peer "alpha": missing required field "public_key"
	// peers.yaml:5: peer "alpha": unknown field "pubic_key" (did you mean "public_key"?)
}
