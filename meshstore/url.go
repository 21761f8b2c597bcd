package meshstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Target is a parsed mesh URL: where etcd is and the prefix of the mesh.
type Target struct {
	Endpoints []string // HOST:PORT, in the order written
	TLS       bool     // etcds://
	Prefix    string   // "/PREFIX", without a trailing slash
}

// URL returns t written as ParseURL reads it.
func (t Target) URL() string {
	scheme := "etcd"
	if t.TLS {
		scheme = "etcds"
	}
	return scheme + "://" + strings.Join(t.Endpoints, ",") + t.Prefix
}

// ParseURL reads etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcds:// for TLS).
// The prefix is required: a mesh never owns the whole keyspace.
func ParseURL(s string) (Target, error) {
	bad := func(format string, args ...any) (Target, error) {
		return Target{}, fmt.Errorf("bad etcd URL %q: %s (want etcd://HOST:PORT[,HOST:PORT...]/PREFIX or etcds://...)", s, fmt.Sprintf(format, args...))
	}
	var t Target
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok:
		return bad("no scheme")
	case scheme == "etcd":
	case scheme == "etcds":
		t.TLS = true
	default:
		return bad("scheme %q is neither etcd nor etcds", scheme)
	}
	if strings.ContainsAny(rest, "?#@") {
		return bad("user, query or fragment not supported (user and password come from ETCD_USERNAME and ETCD_PASSWORD)")
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return bad("no HOST:PORT")
	}
	for _, hp := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return bad("%q is not HOST:PORT", hp)
		}
		if host == "" {
			return bad("%q has no host", hp)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("%q: port must be 1-65535", hp)
		}
		t.Endpoints = append(t.Endpoints, hp)
	}
	path = strings.TrimRight(path, "/")
	if path == "" {
		return bad("no /PREFIX after the hosts")
	}
	if strings.Contains(path, "//") {
		return bad("empty element in prefix %q", path)
	}
	t.Prefix = "/" + path
	return t, nil
}

// Options are the client settings that do not fit in the URL.
type Options struct {
	CA, Cert, Key string // PEM files for etcds://: the CA to trust, our certificate and key
	// Username and Password authenticate to etcd when Username is set;
	// OptionsFromEnv reads them from ETCD_USERNAME and ETCD_PASSWORD.
	Username, Password string
	DialTimeout        time.Duration // 0: 5s
}

// OptionsFromEnv returns Options with the user and password from the
// environment (never from a flag, where ps would show them).
func OptionsFromEnv() Options {
	return Options{Username: os.Getenv("ETCD_USERNAME"), Password: os.Getenv("ETCD_PASSWORD")}
}

// clientConfig checks that the options fit t and builds the client's config.
func clientConfig(t Target, o Options) (clientv3.Config, error) {
	cfg := clientv3.Config{
		DialTimeout: o.DialTimeout,
		Username:    o.Username,
		Password:    o.Password,
		Logger:      zap.NewNop(), // our errors say what failed; the client's logs would only repeat it on stderr
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	scheme := "http://"
	if !t.TLS {
		if o.CA != "" || o.Cert != "" || o.Key != "" {
			return cfg, errors.New("-etcd-ca, -etcd-cert and -etcd-key need an etcds:// URL")
		}
	} else {
		scheme = "https://"
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CA != "" {
			pem, err := os.ReadFile(o.CA)
			if err != nil {
				return cfg, fmt.Errorf("etcd CA: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return cfg, fmt.Errorf("etcd CA %s: no PEM certificate in it", o.CA)
			}
		}
		if (o.Cert == "") != (o.Key == "") {
			return cfg, errors.New("-etcd-cert and -etcd-key go together")
		}
		if o.Cert != "" {
			c, err := tls.LoadX509KeyPair(o.Cert, o.Key)
			if err != nil {
				return cfg, fmt.Errorf("etcd client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		cfg.TLS = tc
	}
	for _, e := range t.Endpoints {
		cfg.Endpoints = append(cfg.Endpoints, scheme+e)
	}
	return cfg, nil
}
