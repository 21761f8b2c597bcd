package main

import (
	"errors"
	"flag"

	"github.com/peer-vpn/peer/config"
)

// nodeFlags are the flags that pick this node out of the mesh file.
type nodeFlags struct {
	config string
	key    string
	iface  string
	listen int
	exit   string
}

func (nf *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&nf.config, "config", "", "mesh file (YAML), the same on every host")
	fs.StringVar(&nf.key, "key", "", "private key file (default: private_key_file of the mesh file)")
	fs.StringVar(&nf.iface, "iface", "", "TUN interface name (default: interface.name of the mesh file)")
	fs.IntVar(&nf.listen, "listen", 0, "UDP listen port (default: the port of this node's endpoint, else 51820)")
	fs.StringVar(&nf.exit, "exit", "", "send every destination outside the mesh through exit peer `NAME`, or none (default: use_exit of this node's entry)")
}

// load reads the mesh file and finds this node in it. Every problem is a
// usage error (exit status 2) and nothing on the system is touched.
func (nf *nodeFlags) load() (*config.Node, error) {
	if nf.config == "" {
		return nil, usageError{errors.New("-config FILE is required")}
	}
	mesh, err := config.Load(nf.config)
	if err != nil {
		return nil, usageError{err}
	}
	node, err := mesh.Node(config.NodeOptions{KeyFile: nf.key, Iface: nf.iface, ListenPort: nf.listen, Exit: nf.exit})
	if err != nil {
		return nil, usageError{err}
	}
	return node, nil
}
