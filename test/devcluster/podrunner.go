package devcluster

// The pod runner stands in for the kubelet and the Deployment controller,
// for the certbound image only: each Deployment whose pod template runs
// that image (as a container or as a native sidecar, an init container with
// restartPolicy Always) becomes one local process of bin/certbound, with
// the pod's Secret, ConfigMap, emptyDir and projected service-account token
// volumes written to a directory, mount paths and listen ports in the
// arguments rewritten to that directory and to free loopback ports, and a
// kubeconfig carrying a token of the pod's own ServiceAccount (so the
// process meets the RBAC the operator granted it). Service names resolve as
// cluster DNS would resolve them, through an HTTPS proxy of the runner's
// (HTTPS_PROXY) that connects <svc>.<ns>.svc to the local pod behind it.
// Readiness is probed as the kubelet would, and the Deployment's status is
// written so the operator sees its servers become available.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PodRunner runs the certbound pods of Deployments as local processes.
type PodRunner struct {
	client client.Client
	kube   kubernetes.Interface
	config *rest.Config
	image  string
	binary string
	dir    string

	mu   sync.Mutex
	pods map[types.NamespacedName]*localPod
	// services is the last Service list seen, so Service names still
	// resolve while the API server is away.
	services []corev1.Service
	// serviceProxy is the URL of the proxy that connects the processes to
	// Services by name (empty until Run starts it).
	serviceProxy string
}

// localPod is one running process standing for a Deployment's pod.
type localPod struct {
	deployment types.NamespacedName
	hash       string
	dir        string
	labels     map[string]string
	ports      map[string]int // container port name and number → local port
	readyPath  string
	readyPort  int
	cmd        *exec.Cmd
	exited     chan struct{}
	logPath    string
	ready      bool
	restarts   int
	// tokenRenewals is when each projected service-account token file
	// (by path) is requested again.
	tokenRenewals map[string]time.Time
}

// NewPodRunner prepares a runner for pods of image, run with binary, with
// their files under dir.
func NewPodRunner(c client.Client, cfg *rest.Config, image, binary, dir string) (*PodRunner, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &PodRunner{client: c, kube: kube, config: cfg, image: image, binary: binary, dir: dir, pods: map[types.NamespacedName]*localPod{}}, nil
}

// Run reconciles processes with Deployments every half second until ctx is
// done, then stops every process.
func (r *PodRunner) Run(ctx context.Context) {
	if err := r.startServiceProxy(ctx); err != nil {
		// Only pods that dial Services by name need it; they fail to
		// connect and say so in their logs.
		fmt.Fprintf(os.Stderr, "devcluster: no Service proxy for the local pods: %v\n", err)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	defer r.stopAll()
	for {
		r.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *PodRunner) sync(ctx context.Context) {
	// Bounded, so that a frozen API server cannot stall the runner.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var deployments appsv1.DeploymentList
	if err := r.client.List(ctx, &deployments); err != nil {
		return // the API server may be away; processes keep running
	}
	var services corev1.ServiceList
	if err := r.client.List(ctx, &services); err == nil {
		r.mu.Lock()
		r.services = services.Items
		r.mu.Unlock()
	}
	seen := map[types.NamespacedName]bool{}
	for i := range deployments.Items {
		d := &deployments.Items[i]
		container := r.certboundContainer(d)
		if container == nil || ptr.Deref(d.Spec.Replicas, 1) == 0 || d.DeletionTimestamp != nil {
			continue
		}
		key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
		seen[key] = true
		r.syncDeployment(ctx, d, container)
	}
	r.mu.Lock()
	for key, p := range r.pods {
		if !seen[key] {
			p.stop()
			delete(r.pods, key)
		}
	}
	r.mu.Unlock()
}

func (r *PodRunner) certboundContainer(d *appsv1.Deployment) *corev1.Container {
	spec := &d.Spec.Template.Spec
	for i := range spec.Containers {
		if r.runsImage(spec.Containers[i].Image) {
			return &spec.Containers[i]
		}
	}
	for i := range spec.InitContainers {
		sidecar := ptr.Deref(spec.InitContainers[i].RestartPolicy, "") == corev1.ContainerRestartPolicyAlways
		if sidecar && r.runsImage(spec.InitContainers[i].Image) {
			return &spec.InitContainers[i]
		}
	}
	return nil
}

// releasedImage is the repository of the released certbound image, which
// the samples' workloads name: the runner runs any tag of it as the local
// build too.
const releasedImage = "ghcr.io/certbound/certbound"

func (r *PodRunner) runsImage(image string) bool {
	if image == r.image {
		return true
	}
	repository, _, _ := strings.Cut(image, "@")
	if colon := strings.LastIndexByte(repository, ':'); colon > strings.LastIndexByte(repository, '/') {
		repository = repository[:colon]
	}
	return repository == releasedImage
}

func templateHash(d *appsv1.Deployment) string {
	data, _ := json.Marshal(d.Spec.Template)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

func (r *PodRunner) syncDeployment(ctx context.Context, d *appsv1.Deployment, container *corev1.Container) {
	key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
	hash := templateHash(d)
	r.mu.Lock()
	p := r.pods[key]
	r.mu.Unlock()
	if p != nil && p.hash != hash {
		// A new pod template is a rollout: replace the process.
		p.stop()
		p = nil
	}
	if p == nil {
		var err error
		if p, err = r.newPod(d, container, hash); err != nil {
			return
		}
		r.mu.Lock()
		r.pods[key] = p
		r.mu.Unlock()
	}
	// Volumes follow their Secrets as kubelet's do, so rotated certificates
	// reach the running process.
	if err := r.writeVolumes(ctx, d, p); err != nil {
		r.writeStatus(ctx, d, false)
		return
	}
	if p.cmd == nil || p.hasExited() {
		if p.cmd != nil {
			p.restarts++
		}
		if err := r.start(ctx, d, container, p); err != nil {
			appendLog(p.logPath, fmt.Sprintf("devcluster: cannot start: %v\n", err))
		}
	}
	p.ready = p.probe()
	r.writeStatus(ctx, d, p.ready)
}

func (r *PodRunner) newPod(d *appsv1.Deployment, container *corev1.Container, hash string) (*localPod, error) {
	dir := filepath.Join(r.dir, d.Namespace+"_"+d.Name+"_"+hash)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &localPod{deployment: types.NamespacedName{Namespace: d.Namespace, Name: d.Name}, hash: hash, dir: dir,
		labels: d.Spec.Template.Labels, ports: map[string]int{}, logPath: filepath.Join(dir, "container.log"),
		tokenRenewals: map[string]time.Time{}}
	for _, cp := range container.Ports {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p.ports[strconv.Itoa(int(cp.ContainerPort))] = port
		if cp.Name != "" {
			p.ports[cp.Name] = port
		}
	}
	if probe := container.ReadinessProbe; probe != nil && probe.HTTPGet != nil {
		p.readyPath = probe.HTTPGet.Path
		p.readyPort = p.ports[probe.HTTPGet.Port.String()]
	}
	return p, nil
}

// writeVolumes materialises the pod's Secret, ConfigMap, emptyDir and
// projected service-account token volumes under <pod dir>/volumes/<name>.
// A missing Secret keeps the pod from starting, as it would keep a real
// pod in ContainerCreating.
func (r *PodRunner) writeVolumes(ctx context.Context, d *appsv1.Deployment, p *localPod) error {
	for _, v := range d.Spec.Template.Spec.Volumes {
		target := filepath.Join(p.dir, "volumes", v.Name)
		if err := os.MkdirAll(target, 0o700); err != nil {
			return err
		}
		var files map[string][]byte
		var items []corev1.KeyToPath
		var optional bool
		switch {
		case v.Secret != nil:
			var s corev1.Secret
			if err := r.client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: v.Secret.SecretName}, &s); err != nil {
				return err
			}
			files, items, optional = s.Data, v.Secret.Items, ptr.Deref(v.Secret.Optional, false)
		case v.ConfigMap != nil:
			var cm corev1.ConfigMap
			if err := r.client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: v.ConfigMap.Name}, &cm); err != nil {
				return err
			}
			files = map[string][]byte{}
			for k, val := range cm.Data {
				files[k] = []byte(val)
			}
			items, optional = v.ConfigMap.Items, ptr.Deref(v.ConfigMap.Optional, false)
		case v.EmptyDir != nil:
			continue
		case v.Projected != nil:
			if err := r.writeProjectedTokens(ctx, d, p, v, target); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("volume %s: only Secret, ConfigMap, emptyDir and projected service-account token volumes run locally", v.Name)
		}
		for _, item := range items {
			// As the kubelet: a listed key that is missing keeps the volume,
			// and so the pod, from being set up (a running pod keeps the
			// files it has).
			if _, ok := files[item.Key]; !ok && !optional && p.cmd == nil {
				return fmt.Errorf("volume %s: key %s not found", v.Name, item.Key)
			}
		}
		for key, data := range files {
			path := key
			if len(items) > 0 {
				i := slices.IndexFunc(items, func(it corev1.KeyToPath) bool { return it.Key == key })
				if i < 0 {
					continue
				}
				path = items[i].Path
			}
			if err := writeIfChanged(filepath.Join(target, path), data); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeProjectedTokens writes the serviceAccountToken sources of a
// projected volume as the kubelet does: a TokenRequest for the pod's
// ServiceAccount with the source's audience (default: the API server's)
// and lifetime (default 1 h), requested again once 80% of the lifetime has
// passed. Unlike the kubelet's, the token is not bound to a Pod object:
// the local pod has none.
func (r *PodRunner) writeProjectedTokens(ctx context.Context, d *appsv1.Deployment, p *localPod, v corev1.Volume, target string) error {
	for _, source := range v.Projected.Sources {
		sat := source.ServiceAccountToken
		if sat == nil {
			return fmt.Errorf("volume %s: only serviceAccountToken sources of projected volumes run locally", v.Name)
		}
		path := filepath.Join(target, sat.Path)
		if renewal, ok := p.tokenRenewals[path]; ok && time.Now().Before(renewal) {
			continue
		}
		lifetime := ptr.Deref(sat.ExpirationSeconds, 3600)
		spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: &lifetime}
		if sat.Audience != "" {
			spec.Audiences = []string{sat.Audience}
		}
		requested := time.Now()
		tr, err := r.kube.CoreV1().ServiceAccounts(d.Namespace).CreateToken(ctx, podServiceAccount(d), &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("volume %s: token for service account %s/%s: %w", v.Name, d.Namespace, podServiceAccount(d), err)
		}
		if err := writeIfChanged(path, []byte(tr.Status.Token)); err != nil {
			return err
		}
		p.tokenRenewals[path] = requested.Add(time.Duration(lifetime) * time.Second * 8 / 10)
	}
	return nil
}

func podServiceAccount(d *appsv1.Deployment) string {
	if sa := d.Spec.Template.Spec.ServiceAccountName; sa != "" {
		return sa
	}
	return "default"
}

// writeIfChanged replaces a file atomically when its content differs, the
// way kubelet swaps a volume's files.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var listenArg = regexp.MustCompile(`^(0\.0\.0\.0|\[::\])?:(\d+)$`)

// localArgs rewrites mount paths to the volume directories and listen
// addresses on container ports to the pod's loopback ports.
func localArgs(args []string, mounts []corev1.VolumeMount, dir string, ports map[string]int) []string {
	mounts = slices.Clone(mounts)
	slices.SortFunc(mounts, func(a, b corev1.VolumeMount) int { return len(b.MountPath) - len(a.MountPath) })
	out := make([]string, len(args))
	for i, arg := range args {
		prefix, value := "", arg
		if strings.HasPrefix(arg, "-") {
			if eq := strings.IndexByte(arg, '='); eq >= 0 {
				prefix, value = arg[:eq+1], arg[eq+1:]
			}
		}
		for _, m := range mounts {
			if value == m.MountPath || strings.HasPrefix(value, strings.TrimSuffix(m.MountPath, "/")+"/") {
				value = filepath.Join(dir, "volumes", m.Name, m.SubPath, strings.TrimPrefix(value, m.MountPath))
				break
			}
		}
		if match := listenArg.FindStringSubmatch(value); match != nil {
			if local, ok := ports[match[2]]; ok {
				value = "127.0.0.1:" + strconv.Itoa(local)
			}
		}
		out[i] = prefix + value
	}
	return out
}

func (r *PodRunner) start(ctx context.Context, d *appsv1.Deployment, container *corev1.Container, p *localPod) error {
	kubeconfig, err := r.podKubeconfig(ctx, d, p.dir)
	if err != nil {
		return err
	}
	args := localArgs(container.Args, container.VolumeMounts, p.dir, p.ports)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir, "KUBECONFIG=" + kubeconfig, "TMPDIR=" + p.dir}
	r.mu.Lock()
	if r.serviceProxy != "" {
		// Loopback addresses (the API server) are never proxied.
		env = append(env, "HTTPS_PROXY="+r.serviceProxy)
	}
	r.mu.Unlock()
	for _, e := range container.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+d.Namespace)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+d.Name+"-local")
		}
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.binary, args...)
	cmd.Env = env
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// podKubeconfig gives the process the identity of its pod's
// ServiceAccount through a TokenRequest, like a projected token volume.
func (r *PodRunner) podKubeconfig(ctx context.Context, d *appsv1.Deployment, dir string) (string, error) {
	sa := podServiceAccount(d)
	tr, err := r.kube.CoreV1().ServiceAccounts(d.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", d.Namespace, sa, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["devcluster"] = &clientcmdapi.Cluster{Server: r.config.Host, CertificateAuthorityData: r.config.CAData}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["pod"] = &clientcmdapi.Context{Cluster: "devcluster", AuthInfo: sa, Namespace: d.Namespace}
	cfg.CurrentContext = "pod"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

func (p *localPod) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *localPod) probe() bool {
	if p.cmd == nil || p.hasExited() {
		return false
	}
	if p.readyPort == 0 {
		return true
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.readyPort, p.readyPath))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// stop ends the process (SIGTERM, then SIGKILL after 5 s).
func (p *localPod) stop() {
	if p.cmd == nil || p.hasExited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (r *PodRunner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, p := range r.pods {
		p.stop()
		delete(r.pods, key)
	}
}

// writeStatus reports the local pod the way the Deployment controller
// would, writing only when something changed.
func (r *PodRunner) writeStatus(ctx context.Context, d *appsv1.Deployment, ready bool) {
	var available int32
	condition := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse,
		Reason: "MinimumReplicasUnavailable", Message: "the local process is not ready"}
	if ready {
		available = 1
		condition.Status, condition.Reason, condition.Message = corev1.ConditionTrue, "MinimumReplicasAvailable", "the local process is ready"
	}
	if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == available && d.Status.Replicas == 1 {
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == condition.Status {
				return
			}
		}
	}
	now := metav1.Now()
	condition.LastUpdateTime, condition.LastTransitionTime = now, now
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1,
		ReadyReplicas: available, AvailableReplicas: available, UnavailableReplicas: 1 - available,
		Conditions: []appsv1.DeploymentCondition{condition},
	}
	if err := r.client.Status().Update(ctx, d); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return
	}
}

// ServiceAddress is the loopback address behind a Service port, found by
// matching the Service's selector with the local pods' labels.
func (r *PodRunner) ServiceAddress(namespace, name string, port int32) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.services, func(s corev1.Service) bool { return s.Namespace == namespace && s.Name == name })
	if i < 0 {
		return "", fmt.Errorf("service %s/%s not found", namespace, name)
	}
	svc := r.services[i]
	for _, sp := range svc.Spec.Ports {
		if sp.Port != port {
			continue
		}
		for key, p := range r.pods {
			if key.Namespace != namespace || len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(p.labels)) {
				continue
			}
			target := sp.TargetPort.String()
			if sp.TargetPort.IntValue() == 0 && sp.TargetPort.StrVal == "" {
				target = strconv.Itoa(int(sp.Port))
			}
			if local, ok := p.ports[target]; ok {
				return "127.0.0.1:" + strconv.Itoa(local), nil
			}
		}
		return "", fmt.Errorf("service %s/%s port %d has no local pod", namespace, name, port)
	}
	return "", fmt.Errorf("service %s/%s has no port %d", namespace, name, port)
}

// serviceAddress resolves addr (host:port) as a pod would: a Service
// name, <svc>.<ns>.svc[.cluster.local], becomes the local pod behind it;
// any other address is returned as it is.
func (r *PodRunner) serviceAddress(addr string) (string, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	parts := strings.Split(strings.TrimSuffix(host, ".cluster.local"), ".")
	if len(parts) != 3 || parts[2] != "svc" {
		return addr, nil
	}
	port, err := strconv.ParseInt(portText, 10, 32)
	if err != nil {
		return "", fmt.Errorf("port of %s: %w", addr, err)
	}
	return r.ServiceAddress(parts[1], parts[0], int32(port))
}

// startServiceProxy serves HTTP CONNECT on a loopback port until ctx is
// done, tunnelling to serviceAddress: what cluster DNS and the Service
// network do for a real pod's HTTPS requests (TLS stays end to end).
func (r *PodRunner) startServiceProxy(ctx context.Context) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := &http.Server{Handler: http.HandlerFunc(r.tunnel), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(l) }()
	go func() {
		<-ctx.Done()
		_ = server.Close()
	}()
	r.mu.Lock()
	r.serviceProxy = "http://" + l.Addr().String()
	r.mu.Unlock()
	return nil
}

func (r *PodRunner) tunnel(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodConnect {
		http.Error(w, "this proxy only tunnels (CONNECT)", http.StatusMethodNotAllowed)
		return
	}
	addr, err := r.serviceAddress(req.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	upstream, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(req.Context(), "tcp", addr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		conn.Close()
		upstream.Close()
		return
	}
	go pipe(upstream, buffered.Reader, conn)
	go pipe(conn, upstream, upstream)
}

// pipe copies src to dst, then closes both ends of the tunnel.
func pipe(dst io.WriteCloser, src io.Reader, srcConn io.Closer) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	srcConn.Close()
}

// VolumeDir is the directory standing for a volume of a Deployment's local
// pod (an emptyDir the process writes, for example).
func (r *PodRunner) VolumeDir(namespace, name, volume string) (string, error) {
	r.mu.Lock()
	p := r.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	r.mu.Unlock()
	if p == nil {
		return "", fmt.Errorf("deployment %s/%s has no local pod", namespace, name)
	}
	return filepath.Join(p.dir, "volumes", volume), nil
}

// Pods describes the local pods, for the demo's printout.
func (r *PodRunner) Pods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for key, p := range r.pods {
		state := "starting"
		if p.ready {
			state = "ready"
		}
		out = append(out, fmt.Sprintf("%s (%s, restarts %d, log %s)", key, state, p.restarts, p.logPath))
	}
	slices.Sort(out)
	return out
}

// LastLogLines returns the end of the local pod log of a Deployment, for
// failure reports.
func (r *PodRunner) LastLogLines(namespace, name string, n int) string {
	r.mu.Lock()
	p := r.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	r.mu.Unlock()
	if p == nil {
		return "(no local pod)"
	}
	return tail(p.logPath, n)
}

func appendLog(path, line string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.WriteString(f, line)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PID is the process id of a Deployment's local pod (0 when none runs).
func (r *PodRunner) PID(namespace, name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	if p == nil || p.cmd == nil || p.cmd.Process == nil || p.hasExited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// KillPod kills the process of a Deployment's local pod without warning,
// as a node failure or an OOM kill would; the runner starts it again.
func (r *PodRunner) KillPod(namespace, name string) bool {
	r.mu.Lock()
	p := r.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	r.mu.Unlock()
	if p == nil || p.cmd == nil || p.hasExited() {
		return false
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	return true
}
