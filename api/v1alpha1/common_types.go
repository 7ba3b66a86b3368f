package v1alpha1

// IssuerReference names a cert-manager Issuer or ClusterIssuer.
type IssuerReference struct {
	// name is the name of the Issuer or ClusterIssuer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// kind is Issuer (in the namespace of the object that needs the
	// certificate) or ClusterIssuer.
	// +optional
	// +kubebuilder:default=Issuer
	Kind IssuerKind `json:"kind,omitempty"`

	// group is the API group of the issuer; cert-manager.io for the built-in
	// issuers, another group for an external issuer.
	// +optional
	// +kubebuilder:default=cert-manager.io
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
}

// IssuerKind is the kind of a cert-manager issuer.
// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
type IssuerKind string

const (
	// IssuerKindIssuer is a namespaced cert-manager Issuer.
	IssuerKindIssuer IssuerKind = "Issuer"
	// IssuerKindClusterIssuer is a cluster-scoped cert-manager ClusterIssuer.
	IssuerKindClusterIssuer IssuerKind = "ClusterIssuer"
)

// SecretKeySelector names one key of a Secret in the same namespace.
type SecretKeySelector struct {
	// name is the name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the data key in the Secret that holds the value.
	// +optional
	// +kubebuilder:default=ca.crt
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// Condition types shared by both kinds.
const (
	// ConditionReady summarises the other conditions: True when the object
	// does everything it promises.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator waits on something
	// that finishes by itself (a certificate being issued, pods rolling
	// out); its reason is the waiting condition's. Absent otherwise.
	// kstatus (Argo CD, Flux) reads it as InProgress.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when only a user's change can make progress
	// (a policy refusal, a subject conflict, a missing trust anchor); its
	// reason is the blocking condition's. Absent otherwise. kstatus reads
	// it as Failed.
	ConditionStalled = "Stalled"
)
