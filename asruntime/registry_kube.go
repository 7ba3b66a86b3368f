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
	// parsed is what the last rebuild made of each object of the
	// informer's store (guarded by rebuildMu). The informer replaces an
	// object whenever it changes, so an object found here again is not
	// converted and parsed again: a rebuild parses only what changed.
	parsed  map[*unstructured.Unstructured]*parsedRegistration
	changed chan struct{}
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
	if err := informer.SetTransform(dropManagedFields); err != nil {
		return nil, err
	}
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
	// A change is loaded at most reloadDebounce after it arrives: the
	// first change after a rebuild arms the timer and later ones do not
	// push it back. A burst of changes costs one rebuild per interval,
	// and a steady stream of them (clients being created one after the
	// other) is still loaded as it goes rather than once it stops.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.changed:
			if !pending {
				pending = true
				debounce.Reset(reloadDebounce)
			}
		case <-debounce.C:
			pending = false
			r.rebuild()
		}
	}
}

// dropManagedFields is the informer's transform: the registry never reads
// the API server's field ownership records, which on a server-side
// applied ClientRegistration are a good part of the object.
func dropManagedFields(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
	}
	return obj, nil
}

// parsedRegistration is what rebuild made of one ClientRegistration:
// the client it registers or why it is refused; other is true for an
// object that is not this server's, neither loaded nor an error.
type parsedRegistration struct {
	parsedClient
	other   bool
	created time.Time
	name    string
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
	objs := r.informer.GetStore().List()
	parsed := make(map[*unstructured.Unstructured]*parsedRegistration, len(objs))
	regs := make([]*parsedRegistration, 0, len(objs))
	for _, obj := range objs {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			reject(sourceOf(obj), fmt.Errorf("unexpected object %T in the informer", obj))
			continue
		}
		p, seen := r.parsed[u]
		if !seen {
			p = r.parseRegistration(u)
		}
		parsed[u] = p
		if !p.other {
			regs = append(regs, p)
		}
	}
	r.parsed = parsed
	slices.SortFunc(regs, func(a, b *parsedRegistration) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	clients := make([]*parsedClient, len(regs))
	for i, reg := range regs {
		clients[i] = &reg.parsedClient
	}
	set := newClientSet(clients, reject)
	sources := make(map[string]string, set.Len())
	for _, p := range clients {
		if p.client != nil {
			if loaded, _ := set.Lookup(p.client.ID); loaded == p.client {
				sources[p.client.ID] = p.source
			}
		}
	}
	r.sources.Store(&sources)
	r.current.Store(set)
	r.metrics.registryLoaded(set.Len(), rejected)
	r.log.Info("client registry loaded", "namespace", r.namespace, "clients", set.Len(), "rejected", rejected)
}

// parseRegistration converts and parses one object of the informer's
// store.
func (r *ClientRegistrationRegistry) parseRegistration(u *unstructured.Unstructured) *parsedRegistration {
	p := &parsedRegistration{
		parsedClient: parsedClient{source: u.GetNamespace() + "/" + u.GetName()},
		created:      u.GetCreationTimestamp().Time,
		name:         u.GetName(),
	}
	reg, ours, err := r.convert(u)
	switch {
	case err != nil:
		p.err = err
	case !ours:
		p.other = true
	default:
		if p.err = serviceAccountOfHolder(reg); p.err == nil {
			p.client, p.err = newClient(&reg.Spec.Client, "", "")
		}
	}
	return p
}

// convert turns one object of the informer's store into a
// ClientRegistration. ours is false for an object that is not this
// server's (the label selector already filters on the API server; this is
// the local check). A labelled object naming another server in its spec is
// an error: the two disagree, and neither server should trust it.
func (r *ClientRegistrationRegistry) convert(u *unstructured.Unstructured) (reg *v1alpha1.ClientRegistration, ours bool, err error) {
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
