package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// waitFor builds a client for the kubeconfig, then calls check every 200ms until it answers ""
// (done) or secs have passed; the error then says what check answered last.
func waitFor(kubeconfig, secs, what string, check func(*kubernetes.Clientset) string) error {
	n, err := strconv.Atoi(secs)
	if err != nil {
		return fmt.Errorf("not a number of seconds: %q", secs)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Duration(n) * time.Second)
	for {
		last := check(cs)
		if last == "" {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%s within %ss: %s", what, secs, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReady polls /readyz through the kubeconfig's identity until it answers 200.
func waitReady(kubeconfig, secs string) error {
	return waitFor(kubeconfig, secs, "the API server was not ready", func(cs *kubernetes.Clientset) string {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		switch {
		case err == nil:
			return ""
		case len(body) > 0:
			return string(body)
		default:
			return err.Error()
		}
	})
}

// waitNodes polls the nodes until there is one at least and every one is Ready.
func waitNodes(kubeconfig, secs string) error {
	return waitFor(kubeconfig, secs, "the nodes were not Ready", func(cs *kubernetes.Clientset) string {
		nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err.Error()
		}
		if len(nodes.Items) == 0 {
			return "no node"
		}
		var notReady []string
		for _, n := range nodes.Items {
			ready := false
			for _, c := range n.Status.Conditions {
				ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
			}
			if !ready {
				notReady = append(notReady, n.Name)
			}
		}
		if len(notReady) > 0 {
			return "not Ready: " + strings.Join(notReady, ", ")
		}
		return ""
	})
}
