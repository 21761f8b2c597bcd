package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// CheckMetricsAddr reports whether addr may be where the Prometheus
// metrics are served (metrics: in the mesh file, -metrics on the command
// line): HOST:PORT with HOST an IP address and PORT from 1 to 65535. An
// empty host (":9586") is refused, though net.Listen would take it as
// every interface: metrics tell anyone who can reach them the names,
// endpoints and traffic of the mesh, so listening beyond this host must be
// written out ("0.0.0.0:9586", "[::]:9586"), never the result of leaving
// the host off. Host names are refused too: what "localhost" resolves to
// is up to /etc/hosts.
func CheckMetricsAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT; write 127.0.0.1:9586 (this host only) or an explicit address", addr)
	}
	if host == "" {
		return fmt.Errorf("%q has no host, which would listen on every interface; write 127.0.0.1:%s (this host only) or an explicit address (0.0.0.0:%s or [::]:%s, written out, for every interface)", addr, port, port, port)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q: the host must be an IP address, not a name; write 127.0.0.1:%s (this host only) or an explicit address", addr, port)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, port)
	}
	return nil
}
