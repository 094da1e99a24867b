// Command etcd is a minimal entry point for the etcd server, built from the
// same module graph as the Kubernetes binaries so that a single Go toolchain
// and module download produce the whole e2e control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
