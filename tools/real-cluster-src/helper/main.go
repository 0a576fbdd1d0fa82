// rc-helper: the small pieces tools/real-cluster needs besides the Kubernetes and etcd binaries
// and kwok (the nodes and pods).
//
//	rc-helper ports N              print N free TCP ports of 127.0.0.1, one a line
//	rc-helper certs DIR            write a CA, the API server's serving cert, the client certs
//	                               of the admin (system:masters) and of kwok, and the
//	                               service-account key pair into DIR
//	rc-helper wait-ready KUBECONFIG SECONDS
//	                               wait until the API server answers /readyz with 200
//	rc-helper wait-nodes KUBECONFIG SECONDS
//	                               wait until there is a node and every node is Ready
//	rc-helper create KUBECONFIG FILE
//	                               create the objects of a YAML file (those that exist are kept)
//	rc-helper load-balancers KUBECONFIG
//	                               give each Service of type LoadBalancer an ingress IP
//	                               (loadbalancer.go)
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: rc-helper ports N | certs DIR | wait-ready KUBECONFIG SECONDS | wait-nodes KUBECONFIG SECONDS | create KUBECONFIG FILE | load-balancers KUBECONFIG")
	}
	var err error
	switch os.Args[1] {
	case "ports":
		err = ports(os.Args[2:])
	case "certs":
		if len(os.Args) != 3 {
			fail("usage: rc-helper certs DIR")
		}
		err = certs(os.Args[2])
	case "wait-ready":
		if len(os.Args) != 4 {
			fail("usage: rc-helper wait-ready KUBECONFIG SECONDS")
		}
		err = waitReady(os.Args[2], os.Args[3])
	case "wait-nodes":
		if len(os.Args) != 4 {
			fail("usage: rc-helper wait-nodes KUBECONFIG SECONDS")
		}
		err = waitNodes(os.Args[2], os.Args[3])
	case "create":
		if len(os.Args) != 4 {
			fail("usage: rc-helper create KUBECONFIG FILE")
		}
		err = create(os.Args[2], os.Args[3])
	case "load-balancers":
		if len(os.Args) != 3 {
			fail("usage: rc-helper load-balancers KUBECONFIG")
		}
		err = loadBalancers(os.Args[2])
	default:
		fail("unknown command " + os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "rc-helper: "+msg)
	os.Exit(1)
}

// ports holds every listener open until all are chosen, so the N ports differ.
func ports(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: rc-helper ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("not a count: %q", args[0])
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
