package main

// The LoadBalancer provider of a control plane without a cloud: what a cloud controller manager
// does for a Service of type LoadBalancer, give it an ingress IP (from 198.51.100.0/24, one a
// Service, in order) in its status. The nodes and pods are kwok's (see ../kwok/stages.yaml).

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func loadBalancers(kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f := informers.NewSharedInformerFactory(cs, 0)
	svcs := f.Core().V1().Services().Informer()
	work := make(chan *corev1.Service, 1024)
	onSvc := func(obj interface{}) {
		s, ok := obj.(*corev1.Service)
		if ok && s.Spec.Type == corev1.ServiceTypeLoadBalancer && len(s.Status.LoadBalancer.Ingress) == 0 {
			work <- s.DeepCopy()
		}
	}
	if _, err := svcs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onSvc,
		UpdateFunc: func(_, o interface{}) { onSvc(o) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	// every 20 s, what failed (a conflict) is tried again
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Second):
			}
			for _, o := range svcs.GetStore().List() {
				onSvc(o)
			}
		}
	}()
	fmt.Fprintln(os.Stderr, "rc-helper load-balancers: watching Services")
	next := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-work:
			next++
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("198.51.100.%d", next%250+1)}}
			_, err := cs.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				fmt.Fprintf(os.Stderr, "service %s/%s: %v\n", s.Namespace, s.Name, err)
			}
		}
	}
}
