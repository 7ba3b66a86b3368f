package controllers

// Pure functions of the AuthorizationServer controller: the effective
// issuer and endpoints, and the desired children.

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/oauthurl"
	"github.com/certbound/certbound/internal/registration"
)

// Reasons of the AuthorizationServer conditions.
const (
	ReasonKeysCurrent               = "KeysCurrent"
	ReasonKeysRegenerated           = "KeysRegenerated"
	ReasonTrustAnchorsLoaded        = "TrustAnchorsLoaded"
	ReasonNoTrustAnchors            = "NoTrustAnchors"
	ReasonTrustAnchorSecretNotFound = "TrustAnchorSecretNotFound"
	ReasonTrustAnchorKeyNotFound    = "TrustAnchorKeyNotFound"
	ReasonTrustAnchorInvalid        = "TrustAnchorInvalid"
	ReasonDeploymentAvailable       = "DeploymentAvailable"
	ReasonDeploymentUnavailable     = "DeploymentUnavailable"
	ReasonInvalidIssuer             = "InvalidIssuer"
	ReasonDefaultClientPolicy       = "DefaultPolicy"
	ReasonClientPolicyLoaded        = "PolicyLoaded"
	// ReasonUnboundSubjectsAllowed warns that the platform team opted out
	// of binding subjects to client namespaces.
	ReasonUnboundSubjectsAllowed = "UnboundSubjectsAllowed"
)

// Ports of the authorization-server pods and Service.
const (
	portHTTPS        = 8443
	portMTLS         = 9443
	portMetrics      = 8080
	servicePortHTTPS = 443
	servicePortMTLS  = 9443

	mountTLS        = "/etc/certbound/tls"
	mountSigning    = "/etc/certbound/signing-keys"
	mountClientCA   = "/etc/certbound/client-ca"
	trustBundleKey  = "ca.crt"
	containerName   = "authorization-server"
	runAsID         = 65532
	defaultTokenTTL = 10 * time.Minute
	defaultRotation = 720 * time.Hour

	// The CRD defaults of spec.tokens' refresh-token settings, for an
	// object the API server has not defaulted.
	defaultRefreshTokenTTL         = time.Hour
	defaultRefreshTokenMaxLifetime = 24 * time.Hour
	defaultRefreshTokenFamilies    = 1000
)

// effectiveIssuer is spec.issuer or https://<name>.<namespace>.svc.
func effectiveIssuer(as *oauthv1alpha1.AuthorizationServer) string {
	if as.Spec.Issuer != "" {
		return strings.TrimSuffix(as.Spec.Issuer, "/")
	}
	return fmt.Sprintf("https://%s.%s.svc", as.Name, as.Namespace)
}

// mtlsBaseURL is the issuer with the mTLS port: the base of the RFC 8705 §5
// endpoint aliases, served by the Service's mtls port.
func mtlsBaseURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return "", fmt.Errorf("issuer %q is not an https URL", issuer)
	}
	u.Host = net.JoinHostPort(u.Hostname(), fmt.Sprint(servicePortMTLS))
	return strings.TrimSuffix(u.String(), "/"), nil
}

// endpoints are the server's URLs as asruntime serves them: metadata at the
// RFC 8414 well-known location, /token and /jwks under the issuer, and the
// mTLS token alias under the mTLS base URL.
func endpoints(issuer string) (oauthv1alpha1.AuthorizationServerEndpoints, error) {
	metadata, err := oauthurl.MetadataURL(issuer)
	if err != nil {
		return oauthv1alpha1.AuthorizationServerEndpoints{}, err
	}
	mtls, err := mtlsBaseURL(issuer)
	if err != nil {
		return oauthv1alpha1.AuthorizationServerEndpoints{}, err
	}
	return oauthv1alpha1.AuthorizationServerEndpoints{
		Metadata:  metadata,
		Token:     oauthurl.EndpointURL(issuer, oauthurl.TokenPath),
		MTLSToken: oauthurl.EndpointURL(mtls, oauthurl.TokenPath),
		JWKS:      oauthurl.EndpointURL(issuer, oauthurl.JWKSPath),
	}, nil
}

func asLabels(as *oauthv1alpha1.AuthorizationServer) map[string]string {
	return map[string]string{
		labelManagedBy: managedByValue,
		labelName:      "certbound-authorization-server",
		labelInstance:  boundedName(as.Name, 63),
		labelComponent: "authorization-server",
	}
}

func selectorLabels(as *oauthv1alpha1.AuthorizationServer) map[string]string {
	return map[string]string{labelName: "certbound-authorization-server", labelInstance: boundedName(as.Name, 63)}
}

func objectMeta(as *oauthv1alpha1.AuthorizationServer, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: as.Namespace, Labels: asLabels(as)}
}

func replicasOf(as *oauthv1alpha1.AuthorizationServer) int32 {
	if as.Spec.Replicas == nil {
		return 1
	}
	return *as.Spec.Replicas
}

func tokenTTLOf(as *oauthv1alpha1.AuthorizationServer) time.Duration {
	if t := as.Spec.Tokens.AccessTokenTTL; t != nil && t.Duration > 0 {
		return t.Duration
	}
	return defaultTokenTTL
}

// refreshTokenArgs map spec.tokens' refresh-token settings to the server's
// flags.
func refreshTokenArgs(as *oauthv1alpha1.AuthorizationServer) []string {
	ttl, maxLifetime, families := defaultRefreshTokenTTL, defaultRefreshTokenMaxLifetime, int32(defaultRefreshTokenFamilies)
	t := as.Spec.Tokens
	if t.RefreshTokenTTL != nil && t.RefreshTokenTTL.Duration > 0 {
		ttl = t.RefreshTokenTTL.Duration
	}
	if t.RefreshTokenMaxLifetime != nil && t.RefreshTokenMaxLifetime.Duration > 0 {
		maxLifetime = t.RefreshTokenMaxLifetime.Duration
	}
	if t.MaxRefreshTokenFamiliesPerClient != nil && *t.MaxRefreshTokenFamiliesPerClient > 0 {
		families = *t.MaxRefreshTokenFamiliesPerClient
	}
	return []string{
		"--refresh-token-ttl=" + ttl.String(),
		"--refresh-token-max-lifetime=" + maxLifetime.String(),
		fmt.Sprintf("--refresh-token-families-per-client=%d", families),
	}
}

func rotationPolicyOf(as *oauthv1alpha1.AuthorizationServer) rotationPolicy {
	p := rotationPolicy{Algorithm: as.Spec.Tokens.SigningAlgorithm, Period: defaultRotation, TokenTTL: tokenTTLOf(as)}
	if p.Algorithm == "" {
		p.Algorithm = "ES256"
	}
	if r := as.Spec.Tokens.KeyRotationPeriod; r != nil && r.Duration > 0 {
		p.Period = r.Duration
	}
	return p
}

// servingDNSNames are the Service's names and the issuer's host.
func servingDNSNames(as *oauthv1alpha1.AuthorizationServer, issuer string) (dnsNames, ips []string) {
	dnsNames = []string{
		as.Name,
		as.Name + "." + as.Namespace,
		as.Name + "." + as.Namespace + ".svc",
		as.Name + "." + as.Namespace + ".svc.cluster.local",
	}
	if u, err := url.Parse(issuer); err == nil && u.Hostname() != "" {
		host := u.Hostname()
		if net.ParseIP(host) != nil {
			ips = append(ips, host)
		} else if !slices.Contains(dnsNames, strings.ToLower(host)) {
			dnsNames = append(dnsNames, strings.ToLower(host))
		}
	}
	return dnsNames, ips
}

func desiredServingCertificate(as *oauthv1alpha1.AuthorizationServer, issuer string) *cmapi.Certificate {
	dnsNames, ips := servingDNSNames(as, issuer)
	ref := as.Spec.ServingCertificate.IssuerRef
	kind := string(ref.Kind)
	if kind == "" {
		kind = cmapi.IssuerKind
	}
	group := ref.Group
	if group == "" {
		group = "cert-manager.io"
	}
	return &cmapi.Certificate{
		TypeMeta:   metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.CertificateKind},
		ObjectMeta: objectMeta(as, servingSecretName(as.Name)),
		Spec: cmapi.CertificateSpec{
			SecretName: servingSecretName(as.Name),
			SecretTemplate: &cmapi.CertificateSecretTemplate{Labels: map[string]string{
				labelManagedBy: managedByValue, LabelServingCertificateOf: boundedName(as.Name, 63),
			}},
			DNSNames:    dnsNames,
			IPAddresses: ips,
			Usages:      []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageServerAuth},
			IssuerRef:   cmmeta.IssuerReference{Name: ref.Name, Kind: kind, Group: group},
			PrivateKey:  &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, RotationPolicy: cmapi.RotationPolicyAlways},
		},
	}
}

func desiredServiceAccount(as *oauthv1alpha1.AuthorizationServer) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: objectMeta(as, workloadName(as.Name)),
	}
}

// The operator can grant the server's Role only what it holds itself.
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=clientregistrations/status,verbs=get;patch

// desiredRole lets the server read the ClientRegistrations of its own
// namespace and keep its revocations and refresh-token families as
// ConfigMaps there (update: a refresh rotates its family with an
// optimistic-concurrency update, so two replicas never both accept one
// refresh token), and report each client's recent authentication failures
// in its ClientRegistration's status (patch on the status subresource
// only: the spec stays the operator's). It reads no Secret through the
// API: its signing keys, serving certificate and trust anchors arrive as
// mounted volumes, so a client private key kept in the same namespace is
// out of its reach.
func desiredRole(as *oauthv1alpha1.AuthorizationServer) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: objectMeta(as, workloadName(as.Name)),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{oauthv1alpha1.GroupVersion.Group},
			Resources: []string{"clientregistrations"},
			Verbs:     []string{"get", "list", "watch"},
		}, {
			APIGroups: []string{oauthv1alpha1.GroupVersion.Group},
			Resources: []string{"clientregistrations/status"},
			Verbs:     []string{"patch"},
		}, {
			APIGroups: []string{""},
			Resources: []string{"configmaps"},
			Verbs:     []string{"get", "list", "watch", "create", "update", "delete"},
		}},
	}
}

// tokenReviewClusterRole is the one ClusterRole, shared by every server,
// that lets a server ask the API server who a service account token
// belongs to (TokenReview), for the token exchange of public clients. It
// allows nothing else: no subjectaccessreviews, unlike
// system:auth-delegator.
const tokenReviewClusterRole = "certbound-authorization-server-tokenreview"

// annotationAuthorizationServer names (<namespace>/<name>) the server a
// cluster-scoped object was made for, which cannot have the namespaced
// server as its owner.
const annotationAuthorizationServer = "oauth.certbound.io/authorization-server"

func desiredTokenReviewClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: tokenReviewClusterRole, Labels: map[string]string{
			labelManagedBy: managedByValue, labelName: "certbound-authorization-server", labelComponent: "authorization-server",
		}},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"authentication.k8s.io"},
			Resources: []string{"tokenreviews"},
			Verbs:     []string{"create"},
		}},
	}
}

// tokenReviewBindingName is the ClusterRoleBinding of one server. The
// namespace cannot contain a dot, so distinct servers never share a name.
func tokenReviewBindingName(asNamespace, asName string) string {
	return boundedName(tokenReviewClusterRole+"."+asNamespace+"."+asName, maxNameLength)
}

// desiredTokenReviewBinding binds the server's ServiceAccount to
// tokenReviewClusterRole. Being cluster-scoped it cannot be owned by the
// server; the annotation leads back to it, and the controller deletes the
// binding once the server is gone.
func desiredTokenReviewBinding(as *oauthv1alpha1.AuthorizationServer) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        tokenReviewBindingName(as.Namespace, as.Name),
			Labels:      asLabels(as),
			Annotations: map[string]string{annotationAuthorizationServer: as.Namespace + "/" + as.Name},
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tokenReviewClusterRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: workloadName(as.Name), Namespace: as.Namespace}},
	}
}

func desiredRoleBinding(as *oauthv1alpha1.AuthorizationServer) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: objectMeta(as, workloadName(as.Name)),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: workloadName(as.Name)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: workloadName(as.Name), Namespace: as.Namespace}},
	}
}

// authorizationServerArgs are the arguments of `certbound
// authorization-server` in the pods.
func authorizationServerArgs(as *oauthv1alpha1.AuthorizationServer, issuer string, withClientCA bool) ([]string, error) {
	mtls, err := mtlsBaseURL(issuer)
	if err != nil {
		return nil, err
	}
	args := []string{
		"authorization-server",
		"--issuer=" + issuer,
		fmt.Sprintf("--listen-address=:%d", portHTTPS),
		fmt.Sprintf("--mtls-listen-address=:%d", portMTLS),
		"--mtls-base-url=" + mtls,
		"--tls-cert-file=" + mountTLS + "/" + corev1.TLSCertKey,
		"--tls-key-file=" + mountTLS + "/" + corev1.TLSPrivateKeyKey,
	}
	if withClientCA {
		args = append(args, "--client-ca-file="+mountClientCA+"/"+trustBundleKey)
	}
	args = append(args,
		"--signing-key-file="+mountSigning+"/"+signingKeysDataKey,
		"--access-token-ttl="+tokenTTLOf(as).String(),
	)
	args = append(args, refreshTokenArgs(as)...)
	args = append(args,
		fmt.Sprintf("--metrics-address=:%d", portMetrics),
		"--registry-namespace="+as.Namespace,
		"--registry-authorization-server="+as.Name,
		// Revocations are shared by the replicas through ConfigMaps in the
		// server's namespace and survive restarts.
		"--revocation-namespace="+as.Namespace,
	)
	return append(args, revocationArgs(as)...), nil
}

// podInputs are what the pod template depends on beyond the spec: hashes of
// mounted content the server reads only at start, so a change rolls the pods.
type podInputs struct {
	Image           string
	SigningKeysHash string
	TrustBundleHash string
	WithClientCA    bool
}

func desiredDeployment(as *oauthv1alpha1.AuthorizationServer, issuer string, in podInputs) (*appsv1.Deployment, error) {
	args, err := authorizationServerArgs(as, issuer, in.WithClientCA)
	if err != nil {
		return nil, err
	}
	readOnly := int32(0o440)
	volumes := []corev1.Volume{
		{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: servingSecretName(as.Name), DefaultMode: &readOnly,
			Items: []corev1.KeyToPath{{Key: corev1.TLSCertKey, Path: corev1.TLSCertKey}, {Key: corev1.TLSPrivateKeyKey, Path: corev1.TLSPrivateKeyKey}},
		}}},
		{Name: "signing-keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: signingSecretName(as.Name), DefaultMode: &readOnly,
			Items: []corev1.KeyToPath{{Key: signingKeysDataKey, Path: signingKeysDataKey}},
		}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("16Mi"))}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: "tls", MountPath: mountTLS, ReadOnly: true},
		{Name: "signing-keys", MountPath: mountSigning, ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
	}
	if in.WithClientCA {
		volumes = append(volumes, corev1.Volume{Name: "client-ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: trustBundleName(as.Name), DefaultMode: &readOnly,
			Items: []corev1.KeyToPath{{Key: trustBundleKey, Path: trustBundleKey}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "client-ca", MountPath: mountClientCA, ReadOnly: true})
	}
	crlVolumes, crlMounts := revocationVolumes(as)
	volumes, mounts = append(volumes, crlVolumes...), append(mounts, crlMounts...)
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("metrics"), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: 3,
		}
	}
	annotations := map[string]string{"oauth.certbound.io/signing-keys-hash": in.SigningKeysHash}
	if in.WithClientCA {
		annotations["oauth.certbound.io/client-ca-hash"] = in.TrustBundleHash
	}
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: objectMeta(as, workloadName(as.Name)),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicasOf(as)),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(as)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: asLabels(as), Annotations: annotations},
				Spec: corev1.PodSpec{
					ServiceAccountName:           workloadName(as.Name),
					AutomountServiceAccountToken: ptr.To(true),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(int64(runAsID)),
						RunAsGroup:     ptr.To(int64(runAsID)),
						FSGroup:        ptr.To(int64(runAsID)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  containerName,
						Image: in.Image,
						Args:  args,
						Ports: []corev1.ContainerPort{
							{Name: "https", ContainerPort: portHTTPS, Protocol: corev1.ProtocolTCP},
							{Name: "mtls", ContainerPort: portMTLS, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: portMetrics, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe:  probe("/healthz", 10),
						ReadinessProbe: probe("/readyz", 5),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						VolumeMounts: mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
	if replicasOf(as) > 1 {
		d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(as)},
		}}
	}
	return d, nil
}

// desiredService exposes the conventional endpoints on 443 and the mTLS
// aliases on 9443, matching status.endpoints and the client-config
// token_endpoint.
func desiredService(as *oauthv1alpha1.AuthorizationServer) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(as, workloadName(as.Name)),
		Spec: corev1.ServiceSpec{
			Selector: selectorLabels(as),
			Ports: []corev1.ServicePort{
				{Name: "https", Port: servicePortHTTPS, TargetPort: intstr.FromString("https"), Protocol: corev1.ProtocolTCP},
				{Name: "mtls", Port: servicePortMTLS, TargetPort: intstr.FromString("mtls"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// desiredPDB keeps one pod down at most during voluntary disruptions; only
// when there is more than one replica (with one it would block drains).
func desiredPDB(as *oauthv1alpha1.AuthorizationServer) *policyv1.PodDisruptionBudget {
	if replicasOf(as) <= 1 {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: policyv1.SchemeGroupVersion.String(), Kind: "PodDisruptionBudget"},
		ObjectMeta: objectMeta(as, workloadName(as.Name)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(as)},
		},
	}
}

// DeploymentAvailable reads the Deployment's Available condition.
func DeploymentAvailable(d *appsv1.Deployment) conditionResult {
	if d == nil {
		return falseResult(ReasonDeploymentUnavailable, "the Deployment has not been created yet")
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ObservedGeneration >= d.Generation {
			return trueResult(ReasonDeploymentAvailable, fmt.Sprintf("%d/%d replicas available", d.Status.AvailableReplicas, ptr.Deref(d.Spec.Replicas, 1)))
		}
	}
	return falseResult(ReasonDeploymentUnavailable, fmt.Sprintf("%d/%d replicas available", d.Status.AvailableReplicas, ptr.Deref(d.Spec.Replicas, 1)))
}

// ServingCertificateReady reads the serving Certificate (nil: not created
// yet) and the tls.crt of its Secret (empty: not issued yet): True while
// the issued certificate is valid at now, else False with cert-manager's
// own message when it has one.
func ServingCertificateReady(cert *cmapi.Certificate, tlsCrt []byte, now time.Time) conditionResult {
	if cert == nil {
		return falseResult(ReasonIssuing, "the serving Certificate has not been created yet")
	}
	if len(tlsCrt) > 0 {
		if leaf, err := parseLeaf(tlsCrt); err == nil && now.Before(leaf.NotAfter) {
			return trueResult(ReasonIssued, fmt.Sprintf("serving certificate valid until %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	msg := "cert-manager has not issued the serving certificate yet"
	for _, c := range cert.Status.Conditions {
		if c.Type == cmapi.CertificateConditionReady && c.Status != cmmeta.ConditionTrue && c.Message != "" {
			msg += ": " + c.Message
		}
	}
	return falseResult(ReasonIssuing, msg)
}

// trustAnchorInput is one spec.clientTrustAnchors entry as observed.
type trustAnchorInput struct {
	Ref    oauthv1alpha1.SecretKeySelector
	Secret *corev1.Secret // nil: not found
}

// TrustAnchorBundle concatenates the trust anchors' PEM bundles, checking
// each holds at least one CA certificate. A missing Secret or key says
// which.
func TrustAnchorBundle(anchors []trustAnchorInput) ([]byte, conditionResult) {
	if len(anchors) == 0 {
		return nil, trueResult(ReasonNoTrustAnchors, "no clientTrustAnchors: tls_client_auth clients cannot authenticate, self-signed clients can")
	}
	var bundle []byte
	total := 0
	for _, a := range anchors {
		key := a.Ref.Key
		if key == "" {
			key = "ca.crt"
		}
		if a.Secret == nil {
			return nil, falseResult(ReasonTrustAnchorSecretNotFound, fmt.Sprintf("trust anchor Secret %s not found", a.Ref.Name))
		}
		data, ok := a.Secret.Data[key]
		if !ok || len(data) == 0 {
			return nil, falseResult(ReasonTrustAnchorKeyNotFound, fmt.Sprintf("trust anchor Secret %s has no key %q", a.Ref.Name, key))
		}
		n, err := countCertificates(data)
		if err != nil || n == 0 {
			msg := "holds no PEM certificate"
			if err != nil {
				msg = err.Error()
			}
			return nil, falseResult(ReasonTrustAnchorInvalid, fmt.Sprintf("trust anchor Secret %s key %q: %s", a.Ref.Name, key, msg))
		}
		total += n
		bundle = append(bundle, data...)
		if len(bundle) > 0 && bundle[len(bundle)-1] != '\n' {
			bundle = append(bundle, '\n')
		}
	}
	return bundle, trueResult(ReasonTrustAnchorsLoaded, fmt.Sprintf("%d CA certificates from %d Secrets", total, len(anchors)))
}

// countCertificates parses a PEM bundle and counts its certificates.
func countCertificates(data []byte) (int, error) {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return 0, fmt.Errorf("PEM block of type %q, want CERTIFICATE", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return 0, fmt.Errorf("parse certificate: %w", err)
		}
		n++
	}
	return n, nil
}

// ClientPolicyReady reports the client policy in force: the safe default,
// the platform team's patterns, or patterns that do not bind subjects to
// the client's namespace (allowed only by explicit opt-out, and said so).
// An invalid policy never gets here: validation refuses the server.
func ClientPolicyReady(as *oauthv1alpha1.AuthorizationServer) conditionResult {
	policy := as.Spec.ClientPolicy
	scopes := fmt.Sprintf("%d scope(s) and %d audience(s) may be requested", len(policy.Scopes), len(policy.Audiences))
	if len(policy.Subjects) == 0 {
		return trueResult(ReasonDefaultClientPolicy, fmt.Sprintf("clients may claim only SPIFFE IDs of their own namespace (%s); %s", oauthv1alpha1.DefaultSubjectPattern, scopes))
	}
	var unbound []string
	for _, sp := range policy.Subjects {
		p, err := registration.PatternFromAPI(sp)
		if err == nil && !p.BindsNamespace() {
			unbound = append(unbound, p.String())
		}
	}
	if len(unbound) > 0 {
		return trueResult(ReasonUnboundSubjectsAllowed, fmt.Sprintf("WARNING: allowUnboundSubjects lets clients of any allowed namespace claim subjects matching %s; uniqueness still holds, first come first served; %s", strings.Join(unbound, ", "), scopes))
	}
	return trueResult(ReasonClientPolicyLoaded, fmt.Sprintf("%d subject pattern(s), each bound to the client's namespace; %s", len(policy.Subjects), scopes))
}

// hashOf is a short stable hash of a JSON-serialisable value: the pod
// template carries the hash of its inputs so that a change rolls the pods.
func hashOf(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16]
}
