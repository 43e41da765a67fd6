// Command etcd is the etcd server of the version go.mod pins (the one k8s.io/kubernetes
// itself requires), for Gibbous's end-to-end tests and dev cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
