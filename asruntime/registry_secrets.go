package asruntime

// The in-cluster registry: the registration Secrets the operator writes in
// the authorization server's namespace, labelled with the server's name,
// each holding one RFC 7591 document under client.json. An informer keeps a
// local copy, so the token endpoint never waits on the API server and keeps
// serving the last known clients while the API server is away.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const (
	// AuthorizationServerLabel names, on a registration Secret, the
	// AuthorizationServer the client is registered with.
	AuthorizationServerLabel = "oauth.certbound.io/authorization-server"
	// RegistrationKey is the Secret data key of the client document.
	RegistrationKey = "client.json"
)

// SecretRegistry serves the clients registered through Secrets.
type SecretRegistry struct {
	namespace string
	log       *slog.Logger
	metrics   *Metrics
	current   atomic.Pointer[ClientSet]
	lister    func() ([]*corev1.Secret, error)
	factory   informers.SharedInformerFactory
	synced    cache.InformerSynced
	rebuildMu sync.Mutex
	changed   chan struct{}
}

// NewSecretRegistry watches the registration Secrets of the authorization
// server named asName in namespace. Call Run to start it.
func NewSecretRegistry(client kubernetes.Interface, namespace, asName string, log *slog.Logger, metrics *Metrics) (*SecretRegistry, error) {
	if namespace == "" || asName == "" {
		return nil, fmt.Errorf("the Secret registry needs a namespace and an authorization server name")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	selector := labels.SelectorFromSet(labels.Set{AuthorizationServerLabel: asName}).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 10*time.Minute,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	secrets := factory.Core().V1().Secrets()
	r := &SecretRegistry{
		namespace: namespace,
		log:       log,
		metrics:   metrics,
		factory:   factory,
		synced:    secrets.Informer().HasSynced,
		lister:    func() ([]*corev1.Secret, error) { return secrets.Lister().Secrets(namespace).List(labels.Everything()) },
		changed:   make(chan struct{}, 1),
	}
	r.current.Store(&ClientSet{})
	notify := func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	if _, err := secrets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// Clients returns the current snapshot.
func (r *SecretRegistry) Clients() *ClientSet { return r.current.Load() }

// Synced reports whether the first full list has been loaded; until then
// the server is not ready.
func (r *SecretRegistry) Synced() bool { return r.synced() }

// Run follows the Secrets until ctx is done. It returns an error only if
// the first list cannot be completed before ctx ends.
func (r *SecretRegistry) Run(ctx context.Context) error {
	r.factory.Start(ctx.Done())
	defer r.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), r.synced) {
		return fmt.Errorf("registration Secrets in namespace %s were never listed: %w", r.namespace, ctx.Err())
	}
	r.rebuild()
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
// come first, so when two Secrets claim the same client_id or subject the
// first holder keeps it.
func (r *SecretRegistry) rebuild() {
	r.rebuildMu.Lock()
	defer r.rebuildMu.Unlock()
	secrets, err := r.lister()
	if err != nil {
		r.log.Error("list registration Secrets; keeping the previous clients", "namespace", r.namespace, "error", err)
		return
	}
	slices.SortFunc(secrets, func(a, b *corev1.Secret) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	rejected := 0
	reject := func(source string, err error) {
		rejected++
		r.log.Warn("client registration skipped", "secret", source, "error", err)
	}
	docs := make([]ClientDocument, 0, len(secrets))
	for _, s := range secrets {
		source := s.Namespace + "/" + s.Name
		data, ok := s.Data[RegistrationKey]
		switch {
		case !ok:
			reject(source, fmt.Errorf("no %s key", RegistrationKey))
		case len(data) > maxClientDocument:
			reject(source, fmt.Errorf("%s is larger than %d bytes", RegistrationKey, maxClientDocument))
		default:
			docs = append(docs, ClientDocument{Source: source, Data: data})
		}
	}
	set := BuildClientSet(docs, reject)
	r.current.Store(set)
	r.metrics.registryLoaded(set.Len(), rejected)
	r.log.Info("client registry loaded", "namespace", r.namespace, "clients", set.Len(), "rejected", rejected)
}
