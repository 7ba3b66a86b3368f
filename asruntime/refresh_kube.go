package asruntime

// The in-cluster refresh token store: one ConfigMap per refresh-token
// family in the authorization server's namespace, next to the revocation
// ConfigMaps, so every replica sees every family and restarts keep them.
//
// Objects. A family is a ConfigMap named refresh-<hex of the first 16
// bytes of SHA-256(server name, family id)>, labelled RefreshTokenOfLabel:
// <server name> and RefreshTokenClientLabel: <hex of the first 16 bytes of
// SHA-256(client_id)> (client_ids can be longer than a label value), its
// state as JSON under RefreshFamilyKey. It holds only the SHA-256 of the
// current token, so reading the ConfigMap gives no usable token; a
// ConfigMap rather than a Secret keeps the server away from Secrets.
//
// Reads and writes go to the API server, not to an informer's copy:
// rotation must decide on the latest state (a replica deciding on a stale
// copy would take a just-rotated token for a replayed one and revoke the
// family). A refresh is one get and one update — the update carries the
// resourceVersion that was read, so of two replicas rotating the same
// token one gets a Conflict, re-reads and refuses. An exchange is one list
// (of the client's families, from the API server's watch cache) and one
// create, plus a delete per evicted family. Refreshes happen once per
// access token lifetime per workload, so this is a few requests a minute
// per pod at most.
//
// The server's Role needs get, list, create, update and delete on
// configmaps in its namespace.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

const (
	// RefreshTokenOfLabel names, on a refresh-token family ConfigMap, the
	// AuthorizationServer that issued it.
	RefreshTokenOfLabel = "oauth.certbound.io/refresh-token-of"
	// RefreshTokenClientLabel is the hex of the first 16 bytes of the
	// SHA-256 of the family's client_id.
	RefreshTokenClientLabel = "oauth.certbound.io/refresh-token-client"
	// RefreshFamilyKey is the ConfigMap data key of the family's state.
	RefreshFamilyKey = "family.json"
)

// KubeRefreshTokenStore is a RefreshTokenStore of ConfigMaps shared by the
// replicas of one authorization server.
type KubeRefreshTokenStore struct {
	client    kubernetes.Interface
	namespace string
	asName    string
}

// NewKubeRefreshTokenStore keeps the refresh-token families of the
// authorization server asName in namespace.
func NewKubeRefreshTokenStore(client kubernetes.Interface, namespace, asName string) (*KubeRefreshTokenStore, error) {
	if namespace == "" || asName == "" {
		return nil, errors.New("the in-cluster refresh token store needs a namespace and an authorization server name")
	}
	return &KubeRefreshTokenStore{client: client, namespace: namespace, asName: asName}, nil
}

func (s *KubeRefreshTokenStore) objectName(id string) string {
	h := sha256.New()
	h.Write([]byte(s.asName))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return "refresh-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func clientLabel(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return hex.EncodeToString(sum[:16])
}

func (s *KubeRefreshTokenStore) Create(ctx context.Context, f *RefreshFamily, perClient int) error {
	ctx, cancel := context.WithTimeout(ctx, kubeRequestTimeout)
	defer cancel()
	configMaps := s.client.CoreV1().ConfigMaps(s.namespace)
	// ResourceVersion 0: the API server's watch cache answers; a family
	// created a moment ago elsewhere may be missed, which lets a client
	// briefly hold one family more than its quota.
	list, err := configMaps.List(ctx, metav1.ListOptions{
		LabelSelector:   labels.SelectorFromSet(labels.Set{RefreshTokenOfLabel: s.asName, RefreshTokenClientLabel: clientLabel(f.ClientID)}).String(),
		ResourceVersion: "0",
	})
	if err != nil {
		return fmt.Errorf("list refresh token families: %w", err)
	}
	var own []RefreshFamily
	for i := range list.Items {
		if g, err := s.decode(&list.Items[i]); err == nil && g.ClientID == f.ClientID {
			own = append(own, *g)
		}
	}
	for _, g := range oldestBeyond(own, perClient) {
		if err := s.Delete(ctx, g.ID); err != nil {
			return err
		}
	}
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:   s.objectName(f.ID),
			Labels: map[string]string{RefreshTokenOfLabel: s.asName, RefreshTokenClientLabel: clientLabel(f.ClientID)},
		},
		Data: map[string]string{RefreshFamilyKey: string(data)},
	}
	if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create refresh token family ConfigMap %s/%s: %w", s.namespace, cm.Name, err)
	}
	return nil
}

// decode reads a family ConfigMap; the version is its resourceVersion.
func (s *KubeRefreshTokenStore) decode(cm *corev1.ConfigMap) (*RefreshFamily, error) {
	if cm.Labels[RefreshTokenOfLabel] != s.asName {
		return nil, fmt.Errorf("ConfigMap %s/%s is not a refresh token family of %s", cm.Namespace, cm.Name, s.asName)
	}
	var f RefreshFamily
	if err := json.Unmarshal([]byte(cm.Data[RefreshFamilyKey]), &f); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: decode refresh token family: %w", cm.Namespace, cm.Name, err)
	}
	f.version = cm.ResourceVersion
	return &f, nil
}

func (s *KubeRefreshTokenStore) Get(ctx context.Context, id string) (*RefreshFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, kubeRequestTimeout)
	defer cancel()
	name := s.objectName(id)
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get refresh token family ConfigMap %s/%s: %w", s.namespace, name, err)
	}
	f, err := s.decode(cm)
	if err != nil {
		return nil, err
	}
	if f.ID != id {
		return nil, nil
	}
	return f, nil
}

func (s *KubeRefreshTokenStore) Replace(ctx context.Context, f *RefreshFamily) error {
	ctx, cancel := context.WithTimeout(ctx, kubeRequestTimeout)
	defer cancel()
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:            s.objectName(f.ID),
			ResourceVersion: f.version,
			Labels:          map[string]string{RefreshTokenOfLabel: s.asName, RefreshTokenClientLabel: clientLabel(f.ClientID)},
		},
		Data: map[string]string{RefreshFamilyKey: string(data)},
	}
	_, err = s.client.CoreV1().ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{})
	switch {
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		return ErrRefreshConflict
	case err != nil:
		return fmt.Errorf("update refresh token family ConfigMap %s/%s: %w", s.namespace, cm.Name, err)
	}
	return nil
}

func (s *KubeRefreshTokenStore) Delete(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, kubeRequestTimeout)
	defer cancel()
	name := s.objectName(id)
	err := s.client.CoreV1().ConfigMaps(s.namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete refresh token family ConfigMap %s/%s: %w", s.namespace, name, err)
	}
	return nil
}

// Prune deletes the expired families, each with its resourceVersion as a
// precondition (a family rotated since the list is not expired); Conflict
// and NotFound mean another replica got there first. Objects that do not
// decode are kept and counted: they are not this server's to judge.
func (s *KubeRefreshTokenStore) Prune(ctx context.Context, now time.Time) (int, error) {
	listCtx, cancel := context.WithTimeout(ctx, kubeRequestTimeout)
	defer cancel()
	configMaps := s.client.CoreV1().ConfigMaps(s.namespace)
	list, err := configMaps.List(listCtx, metav1.ListOptions{
		LabelSelector:   labels.SelectorFromSet(labels.Set{RefreshTokenOfLabel: s.asName}).String(),
		ResourceVersion: "0",
	})
	if err != nil {
		return 0, fmt.Errorf("list refresh token families: %w", err)
	}
	left := 0
	for i := range list.Items {
		cm := &list.Items[i]
		f, err := s.decode(cm)
		if err != nil || !f.expiredAt(now) {
			left++
			continue
		}
		rv := cm.ResourceVersion
		err = configMaps.Delete(listCtx, cm.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return left + len(list.Items) - i, fmt.Errorf("prune refresh token family ConfigMap %s/%s: %w", s.namespace, cm.Name, err)
		}
	}
	return left, nil
}
