package main

import (
	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/netconf"
)

// plan is the system configuration of node n on the given OS, without
// SysctlsBefore (which only the running node knows).
func plan(n *config.Node, goos string) netconf.Plan {
	p := netconf.Plan{
		OS:        goos,
		Iface:     n.Interface.Name,
		MTU:       n.Interface.MTU,
		Addresses: n.Self.Addresses,
		Routes:    n.Routes(),
		UseExit:   n.Exit != nil,
		Exit:      n.Self.Exit,
		ClampMSS:  n.Forwards(),
	}
	for _, r := range n.Remotes {
		if r.Endpoint.IsValid() {
			p.Endpoints = append(p.Endpoints, r.Endpoint.Addr())
		}
	}
	return p
}
