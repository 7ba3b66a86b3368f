package diagnose

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/kubescheme"
	"github.com/certbound/certbound/internal/registration"
)

// ErrProblemsFound is returned when the diagnosis found at least one error,
// so that the command exits with status 1.
var ErrProblemsFound = errors.New("the client has problems that stop it from getting a token")

// Run is the `certbound diagnose` subcommand.
func Run(ctx context.Context, args []string) error {
	return Command(ctx, args, os.Stdout)
}

const usage = "usage: certbound diagnose oauthclient NAMESPACE/NAME [--kubeconfig FILE] [-o text|json]"

// Command parses args, reads the client's objects from the API server and
// writes the findings to stdout.
func Command(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the pod's service account)")
	output := fs.String("o", "text", "output format: text or json")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	// Flags may come before or after the positional arguments.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 2 || (positional[0] != "oauthclient" && positional[0] != "oauthclients") {
		return errors.New(usage)
	}
	namespace, name, ok := strings.Cut(positional[1], "/")
	if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%q is not NAMESPACE/NAME; %s", positional[1], usage)
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %q: use text or json", *output)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("Kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "certbound-diagnose"
	c, err := client.New(cfg, client.Options{Scheme: kubescheme.New()})
	if err != nil {
		return err
	}
	objs, err := Gather(ctx, c, namespace, name, time.Now())
	if err != nil {
		return err
	}
	findings := Diagnose(objs)
	if err := write(stdout, *output, findings); err != nil {
		return err
	}
	if HasErrors(findings) {
		return ErrProblemsFound
	}
	return nil
}

func write(w io.Writer, format string, findings []Finding) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(findings)
	}
	for _, f := range findings {
		line := fmt.Sprintf("%-7s %-15s %s.", strings.ToUpper(string(f.Severity)), f.Check, f.Message)
		if f.Action != "" {
			line += " To fix: " + f.Action + "."
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// Gather reads the OAuthClient and everything its checks need. Objects
// that do not exist are left nil; other read errors are returned.
func Gather(ctx context.Context, c client.Reader, namespace, name string, now time.Time) (*Objects, error) {
	o := &Objects{Client: &v1alpha1.OAuthClient{}, Now: now}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, o.Client); err != nil {
		return nil, fmt.Errorf("read OAuthClient %s/%s: %w", namespace, name, err)
	}
	serverNS := serverNamespace(o.Client)
	var err error
	if o.Server, err = get(ctx, c, serverNS, o.Client.Spec.AuthorizationServerRef.Name, &v1alpha1.AuthorizationServer{}); err != nil {
		return nil, err
	}
	ns, err := get(ctx, c, "", namespace, &corev1.Namespace{})
	if err != nil {
		return nil, err
	}
	if ns != nil {
		o.NamespaceLabels = ns.Labels
	}
	if o.Registration, err = get(ctx, c, serverNS, registration.ObjectName(namespace, name), &v1alpha1.ClientRegistration{}); err != nil {
		return nil, err
	}
	if method(o.Client) == v1alpha1.PublicClient {
		o.ServiceAccount, err = get(ctx, c, namespace, o.Client.Spec.ServiceAccountName, &corev1.ServiceAccount{})
		return o, err
	}
	if o.Certificate, err = get(ctx, c, namespace, name, &cmapi.Certificate{}); err != nil {
		return nil, err
	}
	switch {
	case o.Certificate != nil:
		o.SecretName = o.Certificate.Spec.SecretName
	case o.Client.Status.Certificate != nil && o.Client.Status.Certificate.SecretName != "":
		o.SecretName = o.Client.Status.Certificate.SecretName
	case o.Client.Spec.Certificate.SecretName != "":
		o.SecretName = o.Client.Spec.Certificate.SecretName
	default:
		o.SecretName = controllers.CertificateSecretName(name, "")
	}
	if o.Secret, err = get(ctx, c, namespace, o.SecretName, &corev1.Secret{}); err != nil {
		return nil, err
	}
	if o.Secret != nil {
		o.Chain = parseCertificates(o.Secret.Data[corev1.TLSCertKey])
	}
	if o.Server != nil {
		for _, ta := range o.Server.Spec.ClientTrustAnchors {
			key := ta.SecretRef.Key
			if key == "" {
				key = "ca.crt"
			}
			s, err := get(ctx, c, serverNS, ta.SecretRef.Name, &corev1.Secret{})
			if err != nil {
				return nil, err
			}
			certs := []*x509.Certificate(nil)
			if s != nil {
				certs = parseCertificates(s.Data[key])
			}
			if len(certs) == 0 {
				o.TrustAnchorProblems = append(o.TrustAnchorProblems, fmt.Sprintf("trust anchor Secret %s/%s has no certificate under key %q", serverNS, ta.SecretRef.Name, key))
			}
			o.TrustAnchors = append(o.TrustAnchors, certs...)
		}
	}
	return o, nil
}

// get reads one object; a missing object is nil, not an error.
func get[T client.Object](ctx context.Context, c client.Reader, namespace, name string, obj T) (T, error) {
	var zero T
	if name == "" {
		return zero, nil
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return zero, nil
		}
		return zero, fmt.Errorf("read %T %s/%s: %w", obj, namespace, name, err)
	}
	return obj, nil
}

// parseCertificates returns the CERTIFICATE blocks of a PEM bundle that
// parse, in order.
func parseCertificates(data []byte) []*x509.Certificate {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, cert)
		}
	}
}
