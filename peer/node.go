package main

import (
	"crypto/ed25519"
	"errors"
	"flag"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/meshstore"
)

// nodeFlags are the flags that pick this node out of the mesh.
type nodeFlags struct {
	config string
	key    string
	iface  string
	listen int
	exit   string
	// etcdCA, etcdCert and etcdKey are the TLS files of an etcds:// -config.
	etcdCA, etcdCert, etcdKey string
	// cache is the file a node keeps its last mesh from etcd in ("": the
	// default; only the node itself registers -cache).
	cache string
	// watch is -watch: reload a mesh file when it changes (a mesh in etcd
	// is always watched).
	watch bool
	// trust is -trust: the local file whose trusted_signers a mesh from
	// etcd must be signed by ("": any mesh).
	trust string

	src meshSource // made by source on first use
}

func (nf *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&nf.config, "config", "", "mesh file (YAML), the same on every host, or etcd://HOST:PORT[,HOST:PORT...]/PREFIX\n(etcds:// for TLS; user and password from $ETCD_USERNAME, $ETCD_PASSWORD)")
	fs.StringVar(&nf.key, "key", "", "private key file (default: private_key_file of the mesh file)")
	fs.StringVar(&nf.iface, "iface", "", "TUN interface name (default: interface.name of the mesh file)")
	fs.IntVar(&nf.listen, "listen", 0, "UDP listen port (default: the port of this node's endpoint, else 51820)")
	fs.StringVar(&nf.exit, "exit", "", "send every destination outside the mesh through exit peer `NAME`, or none (default: use_exit of this node's entry)")
	fs.StringVar(&nf.etcdCA, "etcd-ca", "", "PEM `FILE` of the CA that signed etcd's certificate (-config etcds://)")
	fs.StringVar(&nf.etcdCert, "etcd-cert", "", "PEM `FILE` of our client certificate (-config etcds://)")
	fs.StringVar(&nf.etcdKey, "etcd-key", "", "PEM `FILE` of our client certificate's key (-config etcds://)")
	fs.StringVar(&nf.trust, "trust", "", "with -config etcd://: accept only a mesh signed by a key in trusted_signers of the local `FILE`\n(a mesh file, or a file with only trusted_signers)")
}

// source returns where the mesh comes from, made once.
func (nf *nodeFlags) source() (meshSource, error) {
	if nf.src != nil {
		return nf.src, nil
	}
	if nf.config == "" {
		return nil, usageError{errors.New("-config FILE is required")}
	}
	if !isEtcdURL(nf.config) {
		if nf.trust != "" {
			return nil, usageError{errors.New("-trust needs -config etcd://...: a local mesh file is trusted as it is")}
		}
		nf.src = &fileSource{path: nf.config, watchOn: nf.watch}
		return nf.src, nil
	}
	o := meshstore.OptionsFromEnv()
	o.CA, o.Cert, o.Key = nf.etcdCA, nf.etcdCert, nf.etcdKey
	var trusted []ed25519.PublicKey
	if nf.trust != "" {
		var err error
		if trusted, err = config.LoadTrust(nf.trust); err != nil {
			return nil, usageError{err}
		}
	}
	s, err := newEtcdSource(nf.config, o, nf.cache, trusted)
	if err != nil {
		return nil, usageError{err}
	}
	nf.src = s
	return s, nil
}

// loadMesh reads the mesh from its source. Every problem is a usage error
// (exit status 2).
func (nf *nodeFlags) loadMesh() (*config.Mesh, error) {
	src, err := nf.source()
	if err != nil {
		return nil, err
	}
	mesh, err := src.load()
	if err != nil {
		return nil, usageError{err}
	}
	return mesh, nil
}

// load reads the mesh and finds this node in it. Every problem is a usage
// error (exit status 2) and nothing on the system is touched.
func (nf *nodeFlags) load() (*config.Node, error) {
	mesh, err := nf.loadMesh()
	if err != nil {
		return nil, err
	}
	return nf.nodeOf(mesh)
}

// nodeOf is this node's view of mesh.
func (nf *nodeFlags) nodeOf(mesh *config.Mesh) (*config.Node, error) {
	node, err := mesh.Node(config.NodeOptions{KeyFile: nf.key, Iface: nf.iface, ListenPort: nf.listen, Exit: nf.exit})
	if err != nil {
		return nil, usageError{err}
	}
	return node, nil
}
