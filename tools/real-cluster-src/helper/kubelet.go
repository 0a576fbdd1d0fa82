package main

// The node simulator: a fake kubelet (and a LoadBalancer provider) for a control plane without
// real nodes.
//
//   - It registers N Ready nodes (rc-node-1 …) with capacity (32 CPUs, 128Gi memory, 110 pods,
//     8 nvidia.com/gpu) and addresses (InternalIP 192.0.2.1N, ExternalIP 203.0.113.1N, Hostname),
//     and renews their Leases so the node lifecycle controller keeps them Ready.
//   - A pod the scheduler binds to one of them becomes Running and Ready (a pod that does not
//     restart, restartPolicy Never, Succeeds instead), unless its annotation
//     `real-cluster.clearml-script/fail` asks for a failure:
//     `ImagePullBackOff` (Pending, containers waiting with that reason), `CrashLoopBackOff`
//     (Running, not ready, containers waiting with that reason and restarts counted) or
//     `Pending` (left Pending, containers never created).
//   - A pod being deleted on one of its nodes is removed (as a kubelet does once it stopped).
//   - A Service of type LoadBalancer gets an ingress IP from 198.51.100.0/24 in its status.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const failAnnotation = "real-cluster.clearml-script/fail"

func kubelet(args []string) error {
	fs := flag.NewFlagSet("kubelet", flag.ContinueOnError)
	nodes := fs.Int("nodes", 1, "how many nodes to simulate")
	if len(args) < 1 {
		return fmt.Errorf("usage: rc-helper kubelet KUBECONFIG [--nodes N]")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", args[0])
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	names := map[string]int{}
	for i := 1; i <= *nodes; i++ {
		names[fmt.Sprintf("rc-node-%d", i)] = i
	}
	for name, i := range names {
		if err := registerNode(ctx, cs, name, i); err != nil {
			return err
		}
	}
	go func() {
		for {
			for name := range names {
				renew(ctx, cs, name)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
	}()

	f := informers.NewSharedInformerFactory(cs, 0)
	work := make(chan func(), 1024)
	pods := f.Core().V1().Pods().Informer()
	onPod := func(obj interface{}) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		if _, ours := names[p.Spec.NodeName]; ours {
			p := p.DeepCopy()
			work <- func() { handlePod(ctx, cs, p, names[p.Spec.NodeName]) }
		}
	}
	pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onPod,
		UpdateFunc: func(_, o interface{}) { onPod(o) },
	})
	svcs := f.Core().V1().Services().Informer()
	var lbMu sync.Mutex
	nextLB := 0
	onSvc := func(obj interface{}) {
		s, ok := obj.(*corev1.Service)
		if !ok || s.Spec.Type != corev1.ServiceTypeLoadBalancer || len(s.Status.LoadBalancer.Ingress) > 0 {
			return
		}
		s = s.DeepCopy()
		work <- func() {
			lbMu.Lock()
			nextLB++
			ip := fmt.Sprintf("198.51.100.%d", nextLB%250+1)
			lbMu.Unlock()
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
			_, err := cs.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				fmt.Fprintf(os.Stderr, "service %s/%s: %v\n", s.Namespace, s.Name, err)
			}
		}
	}
	svcs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onSvc,
		UpdateFunc: func(_, o interface{}) { onSvc(o) },
	})
	f.Start(ctx.Done())
	// a resync of every pod every 20s retries what failed (a conflict, a crash-loop restart count)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Second):
			}
			for _, o := range pods.GetStore().List() {
				onPod(o)
			}
			for _, o := range svcs.GetStore().List() {
				onSvc(o)
			}
		}
	}()
	for i := 0; i < 4; i++ {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case w := <-work:
					w()
				}
			}
		}()
	}
	fmt.Fprintf(os.Stderr, "rc-helper kubelet: %d node(s) registered\n", len(names))
	<-ctx.Done()
	return nil
}

func registerNode(ctx context.Context, cs *kubernetes.Clientset, name string, i int) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("32"),
		corev1.ResourceMemory:           resource.MustParse("128Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("500Gi"),
		"nvidia.com/gpu":                resource.MustParse("8"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "real-cluster-fake-kubelet",
			},
		},
	}
	for attempt := 0; ; attempt++ {
		_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		if attempt > 50 {
			return fmt.Errorf("cannot register node %s: %w", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	n.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("192.0.2.%d", 10+i)},
			{Type: corev1.NodeExternalIP, Address: fmt.Sprintf("203.0.113.%d", 10+i)},
			{Type: corev1.NodeHostName, Address: name},
		},
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "fake kubelet is ready", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion:          "v1.34.2-fake",
			OperatingSystem:         "linux",
			Architecture:            "amd64",
			ContainerRuntimeVersion: "fake://1.0",
		},
	}
	_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// renew keeps the node's Lease and Ready heartbeat fresh.
func renew(ctx context.Context, cs *kubernetes.Clientset, name string) {
	leases := cs.CoordinationV1().Leases("kube-node-lease")
	now := metav1.NewMicroTime(time.Now())
	secs := int32(40)
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, _ = leases.Create(ctx, &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-node-lease"},
			Spec:       coordv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: &secs, RenewTime: &now},
		}, metav1.CreateOptions{})
	} else if err == nil {
		l.Spec.RenewTime = &now
		_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return
	}
	for i := range n.Status.Conditions {
		n.Status.Conditions[i].LastHeartbeatTime = metav1.Now()
	}
	_, _ = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
}

func handlePod(ctx context.Context, cs *kubernetes.Clientset, p *corev1.Pod, node int) {
	api := cs.CoreV1().Pods(p.Namespace)
	if p.DeletionTimestamp != nil {
		zero := int64(0)
		err := api.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			fmt.Fprintf(os.Stderr, "pod %s/%s: %v\n", p.Namespace, p.Name, err)
		}
		return
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return
	}
	mode := p.Annotations[failAnnotation]
	want := podStatus(p, mode, node)
	if want == nil || statusMatches(p.Status, *want, mode) {
		return
	}
	p.Status = *want
	_, err := api.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		fmt.Fprintf(os.Stderr, "pod %s/%s: %v\n", p.Namespace, p.Name, err)
	}
}

func statusMatches(have, want corev1.PodStatus, mode string) bool {
	if have.Phase != want.Phase || len(have.ContainerStatuses) != len(want.ContainerStatuses) {
		return false
	}
	if mode == "CrashLoopBackOff" {
		return false // restarts keep counting
	}
	for _, c := range have.Conditions {
		if c.Type == corev1.PodReady {
			for _, w := range want.Conditions {
				if w.Type == corev1.PodReady {
					return c.Status == w.Status
				}
			}
		}
	}
	return false
}

func podStatus(p *corev1.Pod, mode string, node int) *corev1.PodStatus {
	now := metav1.Now()
	start := now
	if p.Status.StartTime != nil {
		start = *p.Status.StartTime
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionTrue
		if !ok {
			s = corev1.ConditionFalse
		}
		return corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: now}
	}
	st := &corev1.PodStatus{
		HostIP:    fmt.Sprintf("192.0.2.%d", 10+node),
		HostIPs:   []corev1.HostIP{{IP: fmt.Sprintf("192.0.2.%d", 10+node)}},
		PodIP:     fmt.Sprintf("10.244.%d.%d", node, int(p.UID[0])%250+2),
		StartTime: &start,
		QOSClass:  p.Status.QOSClass,
	}
	st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	containers := func(f func(c corev1.Container) corev1.ContainerStatus) []corev1.ContainerStatus {
		var out []corev1.ContainerStatus
		for _, c := range p.Spec.Containers {
			out = append(out, f(c))
		}
		return out
	}
	waiting := func(reason, msg string, restarts int32) func(corev1.Container) corev1.ContainerStatus {
		return func(c corev1.Container) corev1.ContainerStatus {
			return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "", RestartCount: restarts,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
		}
	}
	restarts := int32(0)
	if len(p.Status.ContainerStatuses) > 0 {
		restarts = p.Status.ContainerStatuses[0].RestartCount
	}
	switch mode {
	case "Pending":
		st.Phase = corev1.PodPending
		st.Conditions = []corev1.PodCondition{cond(corev1.PodScheduled, true, ""), cond(corev1.PodInitialized, true, ""),
			cond(corev1.ContainersReady, false, "ContainersNotReady"), cond(corev1.PodReady, false, "ContainersNotReady")}
		st.ContainerStatuses = containers(waiting("ContainerCreating", "", 0))
	case "ImagePullBackOff":
		st.Phase = corev1.PodPending
		st.Conditions = []corev1.PodCondition{cond(corev1.PodScheduled, true, ""), cond(corev1.PodInitialized, true, ""),
			cond(corev1.ContainersReady, false, "ContainersNotReady"), cond(corev1.PodReady, false, "ContainersNotReady")}
		st.ContainerStatuses = containers(func(c corev1.Container) corev1.ContainerStatus {
			return waiting("ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q", c.Image), 0)(c)
		})
	case "CrashLoopBackOff":
		st.Phase = corev1.PodRunning
		st.Conditions = []corev1.PodCondition{cond(corev1.PodScheduled, true, ""), cond(corev1.PodInitialized, true, ""),
			cond(corev1.ContainersReady, false, "ContainersNotReady"), cond(corev1.PodReady, false, "ContainersNotReady")}
		st.ContainerStatuses = containers(func(c corev1.Container) corev1.ContainerStatus {
			s := waiting("CrashLoopBackOff", fmt.Sprintf("back-off restarting failed container %s", c.Name), restarts+1)(c)
			s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}
			return s
		})
	default:
		done := p.Spec.RestartPolicy == corev1.RestartPolicyNever
		st.Phase = corev1.PodRunning
		if done {
			st.Phase = corev1.PodSucceeded
		}
		st.Conditions = []corev1.PodCondition{cond(corev1.PodScheduled, true, ""), cond(corev1.PodInitialized, true, ""),
			cond(corev1.ContainersReady, !done, ""), cond(corev1.PodReady, !done, "")}
		st.ContainerStatuses = containers(func(c corev1.Container) corev1.ContainerStatus {
			started := true
			s := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "fake://" + c.Image, ContainerID: "fake://" + string(p.UID) + "/" + c.Name,
				Ready: !done, Started: &started,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}}}
			if done {
				s.Started = nil
				s.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: start, FinishedAt: now}}
			}
			return s
		})
	}
	return st
}
