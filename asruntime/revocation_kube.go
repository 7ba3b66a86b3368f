package asruntime

// The in-cluster revocation store: one small ConfigMap per revoked token in
// the authorization server's own namespace, so replicas share revocations
// through the Kubernetes API and no database has to be run.
//
// Objects. A revocation is a ConfigMap named revoked-<hex of the first 16
// bytes of SHA-256(server name, jti)>, labelled RevocationOfLabel: <server
// name> and RevokedByLabel: revokerKey(client_id of the revoking client),
// holding the jti and the token's exp (Unix seconds). The name is
// derived from the jti, so two replicas revoking one token create the same
// object: the second create answers AlreadyExists, which is success once a
// get has shown the object to be that revocation. A ConfigMap rather than
// a Secret: a jti is not a secret, and the server then needs no access to
// Secrets at all (its clients come from ClientRegistrations). The server's
// Role needs get, list, watch, create and delete on configmaps in its
// namespace.
//
// Reads. An informer filtered by the label keeps a local copy: IsRevoked is
// a map lookup and never waits on the API server, and the copy is indexed
// by RevokedByLabel, so a client's quota is counted without a request. A
// revocation made at one replica is seen by every other within the watch
// latency — the create's round trip plus the watch event's delivery,
// typically well under a second (tens of milliseconds on a healthy control
// plane). Until the first list
// has completed IsRevoked returns an error (introspection answers 503) and
// Check fails (readiness false). While the API server is away the copy
// keeps answering with what it knew and Revoke fails (503, RFC 7009's
// "retry later"), so no revocation is acknowledged that is not recorded. A
// replica cut off from the API server while the others are not keeps
// answering from its copy, which is then as stale as the partition is
// long.
//
// Pruning. Every replica deletes, at each Prune, the entries whose exp has
// passed, with the object's UID as a precondition; NotFound and Conflict
// mean another replica got there first.
//
// Volume and limits. Each revocation costs one create, and one delete once
// the token has expired (other replicas' deletes of the same object are
// refused without a write), so etcd sees two writes per revocation; a
// concurrent revocation of one token adds a get. `certbound
// authorization-server` lets each replica send kubeClientQPS requests a
// second (bursts of kubeClientBurst), shared between its revocations and
// its pruning, and every replica issues the expiry deletes. What stops
// scaling is the number of live objects: every entry is an etcd object of
// under 1 KiB, listed in full by each replica at start and on every
// relist, and held in each replica's memory (~1 KiB). Tens of thousands of
// live revocations are fine. A revocation storm of 100 a second with
// 10-minute tokens keeps 60,000 objects alive — workable, at the edge of
// what one namespace of ConfigMaps should carry; past the
// DefaultKubeRevocationMaxEntries bound Revoke answers
// ErrRevocationStoreFull. Deployments that expect more should shorten the
// token lifetime or use the --state-dir store. No one client gets there: it
// may hold DefaultRevocationMaxEntriesPerClient objects at a time
// (ErrRevocationQuotaExceeded past that), counted in the local copy, so
// replicas revoking for one client at the same moment can exceed the
// quota by what each has not yet seen of the others' creates; the
// per-client rate limit of /revoke keeps that to a few objects.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

const (
	// RevocationOfLabel names, on a revocation ConfigMap, the
	// AuthorizationServer whose token it revokes.
	RevocationOfLabel = "oauth.certbound.io/revocation-of"
	// RevokedByLabel is, on a revocation ConfigMap, the revoking client's
	// key: 32 hex digits of SHA-256 of its client_id (a client_id is
	// longer than a label value may be).
	RevokedByLabel = "oauth.certbound.io/revoked-by"
	// RevocationJTIKey and RevocationExpiryKey are the ConfigMap data keys
	// of the token's jti and exp (Unix seconds).
	RevocationJTIKey    = "jti"
	RevocationExpiryKey = "exp"

	// DefaultKubeRevocationMaxEntries bounds the in-cluster store unless
	// configured otherwise: a sustained 160 revocations a second at the
	// default token lifetime.
	DefaultKubeRevocationMaxEntries = 100_000

	// kubeRequestTimeout bounds one create or delete.
	kubeRequestTimeout = 10 * time.Second

	// revokedByIndex indexes the cached revocations by RevokedByLabel.
	revokedByIndex = "revokedBy"
)

// errRevocationsNotSynced is returned until the first list has completed.
var errRevocationsNotSynced = errors.New("revocation store: revocation ConfigMaps not listed yet")

// KubeRevocationStore is a RevocationStore of ConfigMaps shared by the
// replicas of one authorization server. Call Run to start it.
type KubeRevocationStore struct {
	client    kubernetes.Interface
	namespace string
	asName    string
	// max bounds the live entries, maxPerClient those of one client.
	max, maxPerClient int
	log               *slog.Logger
	factory           informers.SharedInformerFactory
	lister            listerscorev1.ConfigMapNamespaceLister
	indexer           cache.Indexer
	synced            cache.InformerSynced
	// entries follows the informer's adds and deletes: the size the
	// max bound is checked against.
	entries atomic.Int64
	// ownWrites holds the jtis this replica revoked (with their exp) until
	// its informer copy shows them, so that a revocation is in force here
	// the moment /revoke answers, not a watch event later.
	ownWrites sync.Map
}

// NewKubeRevocationStore keeps the revocations of the authorization server
// named asName in namespace; max bounds the live entries (zero:
// DefaultKubeRevocationMaxEntries), maxPerClient those of one revoking
// client (zero: DefaultRevocationMaxEntriesPerClient).
func NewKubeRevocationStore(client kubernetes.Interface, namespace, asName string, max, maxPerClient int, log *slog.Logger) (*KubeRevocationStore, error) {
	if namespace == "" || asName == "" {
		return nil, errors.New("the in-cluster revocation store needs a namespace and an authorization server name")
	}
	max, maxPerClient = revocationBounds(max, DefaultKubeRevocationMaxEntries, maxPerClient)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	selector := labels.SelectorFromSet(labels.Set{RevocationOfLabel: asName}).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	configMaps := factory.Core().V1().ConfigMaps()
	informer := configMaps.Informer()
	if err := informer.AddIndexers(cache.Indexers{revokedByIndex: revokedBy}); err != nil {
		return nil, err
	}
	s := &KubeRevocationStore{
		client:       client,
		namespace:    namespace,
		asName:       asName,
		max:          max,
		maxPerClient: maxPerClient,
		log:          log,
		factory:      factory,
		lister:       configMaps.Lister().ConfigMaps(namespace),
		indexer:      informer.GetIndexer(),
	}
	counted, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.entries.Add(1) },
		DeleteFunc: func(any) { s.entries.Add(-1) },
	})
	if err != nil {
		return nil, err
	}
	// Synced once the first list is cached and counted.
	s.synced = counted.HasSynced
	return s, nil
}

// revokedBy is the index function of revokedByIndex. Revocations made
// before the label existed are in no client's quota.
func revokedBy(obj any) ([]string, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || cm.Labels[RevokedByLabel] == "" {
		return nil, nil
	}
	return []string{cm.Labels[RevokedByLabel]}, nil
}

// Run follows the revocation ConfigMaps until ctx is done. It returns an
// error only if the first list cannot be completed before ctx ends.
func (s *KubeRevocationStore) Run(ctx context.Context) error {
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), s.synced) {
		return fmt.Errorf("revocation ConfigMaps in namespace %s were never listed: %w", s.namespace, ctx.Err())
	}
	s.log.Info("revocation store loaded", "namespace", s.namespace, "entries", s.entries.Load())
	<-ctx.Done()
	return nil
}

// objectName is the ConfigMap of a jti: a DNS label, the same at every
// replica, distinct between authorization servers sharing a namespace.
func (s *KubeRevocationStore) objectName(jti string) string {
	h := sha256.New()
	h.Write([]byte(s.asName))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return "revoked-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (s *KubeRevocationStore) Revoke(ctx context.Context, clientID, jti string, exp time.Time) error {
	if err := validJTI(jti); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if !s.synced() {
		return errRevocationsNotSynced
	}
	name := s.objectName(jti)
	if cm, err := s.lister.Get(name); err == nil && cm.Data[RevocationJTIKey] == jti {
		return nil
	}
	revoker := revokerKey(clientID)
	held, err := s.indexer.IndexKeys(revokedByIndex, revoker)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if len(held) >= s.maxPerClient {
		return ErrRevocationQuotaExceeded
	}
	if s.entries.Load() >= int64(s.max) {
		return ErrRevocationStoreFull
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{RevocationOfLabel: s.asName, RevokedByLabel: revoker},
		},
		Data: map[string]string{
			RevocationJTIKey:    jti,
			RevocationExpiryKey: strconv.FormatInt(exp.Unix(), 10),
		},
	}
	ctx, cancel := context.WithTimeout(ctx, kubeRequestTimeout)
	defer cancel()
	configMaps := s.client.CoreV1().ConfigMaps(s.namespace)
	_, err = configMaps.Create(ctx, cm, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("revoke: create ConfigMap %s/%s: %w", s.namespace, name, err)
		}
		s.ownWrites.Store(jti, exp)
		return nil
	}
	// Most often another replica revoking the same token a moment
	// earlier; success only if the object is that revocation, as IsRevoked
	// will read it.
	existing, err := configMaps.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("revoke: get ConfigMap %s/%s: %w", s.namespace, name, err)
	}
	if existing.Labels[RevocationOfLabel] != s.asName || existing.Data[RevocationJTIKey] != jti {
		return fmt.Errorf("revoke: ConfigMap %s/%s exists and is not this revocation", s.namespace, name)
	}
	return nil
}

func (s *KubeRevocationStore) IsRevoked(_ context.Context, jti string, _ time.Time) (bool, error) {
	if !s.synced() {
		return false, errRevocationsNotSynced
	}
	if validJTI(jti) != nil {
		// Never recorded: Revoke refuses such a jti.
		return false, nil
	}
	cm, err := s.lister.Get(s.objectName(jti))
	switch {
	case err == nil:
		s.ownWrites.Delete(jti)
		return cm.Data[RevocationJTIKey] == jti, nil
	case apierrors.IsNotFound(err):
		_, own := s.ownWrites.Load(jti)
		return own, nil
	default:
		return false, fmt.Errorf("revocation store: %w", err)
	}
}

// Prune deletes the entries expired at now. Entries without a readable exp
// are kept and counted: they are not this server's to judge.
func (s *KubeRevocationStore) Prune(now time.Time) (int, error) {
	if !s.synced() {
		return 0, errRevocationsNotSynced
	}
	all, err := s.lister.List(labels.Everything())
	if err != nil {
		return 0, fmt.Errorf("revocation store: %w", err)
	}
	cutoff := now.Unix()
	// This replica's own recent revocations may not be in its copy yet;
	// the expired ones are deleted by name below, or they would outlive
	// this Prune at every replica.
	var expiredOwn []string
	s.ownWrites.Range(func(jti, exp any) bool {
		if exp.(time.Time).Unix() < cutoff {
			s.ownWrites.Delete(jti)
			expiredOwn = append(expiredOwn, jti.(string))
		}
		return true
	})
	listed := make(map[string]bool, len(all))
	left := 0
	var firstErr error
	for _, cm := range all {
		listed[cm.Name] = true
		exp, err := strconv.ParseInt(cm.Data[RevocationExpiryKey], 10, 64)
		if err != nil || exp >= cutoff {
			left++
			continue
		}
		// After one failure (the API server is most likely away) the rest
		// waits for the next Prune rather than for a timeout each.
		if firstErr == nil {
			uid := cm.UID
			firstErr = s.delete(cm.Name, &metav1.Preconditions{UID: &uid})
			if firstErr == nil {
				continue
			}
		}
		left++
	}
	for _, jti := range expiredOwn {
		// The object of a jti holds that token's expiry only, so an
		// expired one is deleted whatever its UID.
		if name := s.objectName(jti); !listed[name] && firstErr == nil {
			firstErr = s.delete(name, nil)
		}
	}
	return left, firstErr
}

// delete removes one expired entry, unless preconditions say the object
// was replaced since it was cached; an object already gone is not an
// error.
func (s *KubeRevocationStore) delete(name string, preconditions *metav1.Preconditions) error {
	ctx, cancel := context.WithTimeout(context.Background(), kubeRequestTimeout)
	defer cancel()
	err := s.client.CoreV1().ConfigMaps(s.namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: preconditions})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("prune ConfigMap %s/%s: %w", s.namespace, name, err)
	}
	return nil
}

// Check fails until the first list has completed. Afterwards the store
// stays ready while the API server is away: the local copy answers.
func (s *KubeRevocationStore) Check() error {
	if !s.synced() {
		return errRevocationsNotSynced
	}
	return nil
}
