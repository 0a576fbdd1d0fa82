package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// create creates every object of a YAML file (documents separated by ---) as it is written,
// status included (a Node keeps the status it is created with, as a kubelet registers it). An
// object that exists already is left as it is.
func create(kubeconfig, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	ctx := context.Background()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for n := 1; ; n++ {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: document %d: %w", file, n, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s: document %d (%s): %w", file, n, gvk.Kind, err)
		}
		api := dyn.Resource(m.Resource)
		var res dynamic.ResourceInterface = api
		if ns := obj.GetNamespace(); ns != "" {
			res = api.Namespace(ns)
		}
		// the RBAC and core API answer as soon as /readyz does; a short retry covers a slow start
		for attempt := 0; ; attempt++ {
			_, err = res.Create(ctx, &obj, metav1.CreateOptions{FieldManager: "rc-helper"})
			if err == nil || apierrors.IsAlreadyExists(err) {
				break
			}
			if attempt >= 25 || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
				return fmt.Errorf("%s: cannot create %s %s: %w", file, gvk.Kind, obj.GetName(), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
