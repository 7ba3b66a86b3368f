package asruntime

// The in-cluster registry: the ClientRegistration objects the operator
// writes in the authorization server's namespace, labelled with the
// server's name, each carrying one client's RFC 7591 metadata in
// spec.client. An informer keeps a local copy, so the token endpoint never
// waits on the API server and keeps serving the last known clients while
// the API server is away. The registry reads ClientRegistrations and
// writes nothing but their status (authfailures_kube.go): the server
// needs no access to Secrets.

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// ClientRegistrationResource is the API resource the in-cluster registry
// follows.
var ClientRegistrationResource = v1alpha1.GroupVersion.WithResource("clientregistrations")

// kubeRegistryResync is the informer's periodic resync.
const kubeRegistryResync = 10 * time.Minute

// ClientRegistrationRegistry serves the clients registered through
// ClientRegistration objects.
type ClientRegistrationRegistry struct {
	namespace string
	asName    string
	log       *slog.Logger
	metrics   *Metrics
	current   atomic.Pointer[ClientSet]
	loaded    atomic.Bool
	factory   dynamicinformer.DynamicSharedInformerFactory
	informer  cache.SharedIndexInformer
	// handled is true once the handler has seen the first list's events.
	handled   cache.InformerSynced
	rebuildMu sync.Mutex
	changed   chan struct{}
	// client writes the status reports of failures; sources maps each
	// loaded client_id to its ClientRegistration's namespace/name key.
	client      dynamic.Interface
	sources     atomic.Pointer[map[string]string]
	failures    *authFailureAggregator
	failureTick time.Duration
	// observedBy names this replica in the reports: the pod's host name.
	observedBy string
}

// NewClientRegistrationRegistry watches the ClientRegistrations in
// namespace labelled for the authorization server asName. Call Run to
// start it.
func NewClientRegistrationRegistry(client dynamic.Interface, namespace, asName string, log *slog.Logger, metrics *Metrics) (*ClientRegistrationRegistry, error) {
	if namespace == "" || asName == "" {
		return nil, fmt.Errorf("the ClientRegistration registry needs a namespace and an authorization server name")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	selector := labels.SelectorFromSet(labels.Set{registration.LabelAuthorizationServer: asName}).String()
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, kubeRegistryResync, namespace,
		func(o *metav1.ListOptions) { o.LabelSelector = selector })
	informer := factory.ForResource(ClientRegistrationResource).Informer()
	r := &ClientRegistrationRegistry{
		namespace: namespace,
		asName:    asName,
		log:       log,
		metrics:   metrics,
		factory:   factory,
		informer:  informer,
		changed:   make(chan struct{}, 1),

		client:      client,
		failures:    newAuthFailureAggregator(),
		failureTick: authFailureFlushTick,
	}
	r.observedBy, _ = os.Hostname()
	r.current.Store(&ClientSet{})
	r.sources.Store(&map[string]string{})
	notify := func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	handler, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { notify() },
		// The servers' own status reports (authentication failures) and
		// the informer's resyncs change nothing the registry reads.
		UpdateFunc: func(old, updated any) {
			if registrationReadChanged(old, updated) {
				notify()
			}
		},
		DeleteFunc: func(any) { notify() },
	})
	if err != nil {
		return nil, err
	}
	r.handled = handler.HasSynced
	return r, nil
}

// Clients returns the current snapshot.
func (r *ClientRegistrationRegistry) Clients() *ClientSet { return r.current.Load() }

// Synced reports whether the first full list has been loaded into a
// snapshot; until then the server is not ready.
func (r *ClientRegistrationRegistry) Synced() bool { return r.loaded.Load() }

// Run follows the ClientRegistrations until ctx is done. It returns an
// error only if the first list cannot be completed before ctx ends.
func (r *ClientRegistrationRegistry) Run(ctx context.Context) error {
	r.factory.Start(ctx.Done())
	defer r.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), r.informer.HasSynced, r.handled) {
		return fmt.Errorf("ClientRegistrations in namespace %s were never listed: %w", r.namespace, ctx.Err())
	}
	// The first list's events are all in this first snapshot.
	select {
	case <-r.changed:
	default:
	}
	r.rebuild()
	r.loaded.Store(true)
	var reporting sync.WaitGroup
	defer reporting.Wait()
	reporting.Go(func() { r.reportAuthFailures(ctx, r.failureTick) })
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.changed:
			debounce.Reset(reloadDebounce)
		case <-debounce.C:
			r.rebuild()
		}
	}
}

// rebuild builds a snapshot from the informer's copy. Older registrations
// come first, so when two ClientRegistrations claim the same client_id or
// subject the first holder keeps it.
func (r *ClientRegistrationRegistry) rebuild() {
	r.rebuildMu.Lock()
	defer r.rebuildMu.Unlock()
	rejected := 0
	reject := func(source string, err error) {
		rejected++
		r.log.Warn("client registration skipped", "clientregistration", source, "error", err)
	}
	var regs []*v1alpha1.ClientRegistration
	for _, obj := range r.informer.GetStore().List() {
		reg, ours, err := r.convert(obj)
		switch {
		case err != nil:
			reject(sourceOf(obj), err)
		case ours:
			if err := serviceAccountOfHolder(reg); err != nil {
				reject(sourceOf(obj), err)
				continue
			}
			regs = append(regs, reg)
		}
	}
	slices.SortFunc(regs, func(a, b *v1alpha1.ClientRegistration) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	docs := make([]ClientDocument, 0, len(regs))
	for _, reg := range regs {
		docs = append(docs, ClientDocument{Source: reg.Namespace + "/" + reg.Name, Metadata: &reg.Spec.Client})
	}
	set := BuildClientSet(docs, reject)
	sources := make(map[string]string, set.Len())
	for _, doc := range docs {
		if _, ok := set.Lookup(doc.Metadata.ClientID); ok {
			if _, taken := sources[doc.Metadata.ClientID]; !taken {
				sources[doc.Metadata.ClientID] = doc.Source
			}
		}
	}
	r.sources.Store(&sources)
	r.current.Store(set)
	r.metrics.registryLoaded(set.Len(), rejected)
	r.log.Info("client registry loaded", "namespace", r.namespace, "clients", set.Len(), "rejected", rejected)
}

// convert turns one object of the informer's store into a
// ClientRegistration. ours is false for an object that is not this
// server's (the label selector already filters on the API server; this is
// the local check). A labelled object naming another server in its spec is
// an error: the two disagree, and neither server should trust it.
func (r *ClientRegistrationRegistry) convert(obj any) (reg *v1alpha1.ClientRegistration, ours bool, err error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, false, fmt.Errorf("unexpected object %T in the informer", obj)
	}
	if u.GetNamespace() != r.namespace || u.GetLabels()[registration.LabelAuthorizationServer] != r.asName {
		return nil, false, nil
	}
	reg = &v1alpha1.ClientRegistration{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), reg); err != nil {
		return nil, false, fmt.Errorf("decode ClientRegistration: %w", err)
	}
	if reg.Spec.AuthorizationServerName != r.asName {
		return nil, false, fmt.Errorf("labelled %s=%s but spec.authorizationServerName is %q",
			registration.LabelAuthorizationServer, r.asName, reg.Spec.AuthorizationServerName)
	}
	return reg, true, nil
}

// serviceAccountOfHolder refuses a registration whose service_account is
// in another namespace than the OAuthClient holding it. The operator never
// writes one (policy and webhook refuse it); checking it here as well means
// a registration written by anyone else can never let one namespace's
// client exchange another namespace's service account tokens.
func serviceAccountOfHolder(reg *v1alpha1.ClientRegistration) error {
	if reg.Spec.Client.ServiceAccount == "" {
		return nil
	}
	namespace, _, err := parseServiceAccountUsername(reg.Spec.Client.ServiceAccount)
	if err != nil {
		return fmt.Errorf("client %q: service_account: %w", reg.Spec.Client.ClientID, err)
	}
	if namespace != reg.Spec.Holder.Namespace {
		return fmt.Errorf("client %q: service_account is in namespace %q, the client is in %q", reg.Spec.Client.ClientID, namespace, reg.Spec.Holder.Namespace)
	}
	return nil
}

// registrationReadChanged reports whether an update changed what rebuild
// reads of a ClientRegistration: its labels, creation time or spec. An
// object of another type is reported changed.
func registrationReadChanged(old, updated any) bool {
	o, ok1 := old.(*unstructured.Unstructured)
	n, ok2 := updated.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.Equal(o.GetLabels(), n.GetLabels()) ||
		!o.GetCreationTimestamp().Time.Equal(n.GetCreationTimestamp().Time) ||
		!equality.Semantic.DeepEqual(o.Object["spec"], n.Object["spec"])
}

func sourceOf(obj any) string {
	if o, ok := obj.(metav1.Object); ok {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return fmt.Sprintf("%T", obj)
}
