/*
Copyright 2026 The externalsource-controller authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package cluster brings up a one-node Kubernetes cluster from real parts on
// this machine: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet (cgroupfs driver), kube-proxy (iptables mode),
// containerd with runc and the CNI bridge plugin, and CoreDNS as a pod; and
// tears it down so that nothing of it is left on the host.
//
// Its traffic stays on the machine: the pods live on a bridge this package
// creates, with a route to the service range only (no default route); a
// guard chain drops anything forwarded between the bridge and any other
// interface, and nothing is masqueraded. The API server and the kubelet bind
// the bridge's address (the kubelet refuses a loopback node address).
//
// It needs root and Linux, the binaries hack/tools.sh builds into bin/ and
// the Debian packages containerd, runc, containernetworking-plugins and
// iptables (.ci/run installs them). The tests in this directory and `make
// cluster` (hack/cluster) use it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options say where the cluster lives. The zero value is usable.
type Options struct {
	// Root is the repository root (bin/ holds the tools).
	Root string
	// Bridge is the name of the bridge the pods live on.
	Bridge string
	// PodCIDR is the pods' /24; its first address is the bridge's, which
	// the API server, the kubelet and the tests' own servers bind.
	PodCIDR string
	// ServiceCIDR is the services' range; the tenth address is CoreDNS's.
	ServiceCIDR string
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// Cluster is a running one-node cluster.
type Cluster struct {
	opts Options
	// Dir holds everything the cluster writes that can be placed: data,
	// configuration, certificates, sockets, logs.
	Dir string
	// Kubeconfig is an administrator's kubeconfig.
	Kubeconfig string
	// Config is the administrator's client configuration.
	Config *rest.Config
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// NodeIP is the bridge's address: the node's, the API server's and the
	// one the tests' servers listen on for pods to reach.
	NodeIP net.IP
	// DNSIP is CoreDNS's service address.
	DNSIP net.IP
	// NodeName is the one node's name.
	NodeName string
	// ContainerdSocket is containerd's API socket (for ctr).
	ContainerdSocket string

	cgroupRoot string
	before     *HostState
	sysctls    map[string]string
	procs      []*proc
	pki        *pki
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// stopped is set when teardown stops it: its exit is no failure.
	stopped bool
}

// Images the cluster itself runs; ImportImages loads them.
const (
	PauseImage   = "localhost/exs/pause:1"
	CoreDNSImage = "localhost/exs/coredns:v1.15.0"
)

// Preflight says why the cluster cannot run here, or nil.
func Preflight(root string) error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("the one-node cluster needs Linux, this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return errors.New("the one-node cluster needs root (it runs a kubelet, containerd and a bridge)")
	}
	var missing []string
	for _, b := range []string{"containerd", "ctr", "runc", "iptables", "iptables-save", "iptables-restore", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, t := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "coredns"} {
		if _, err := os.Stat(filepath.Join(root, "bin", t)); err != nil {
			missing = append(missing, "bin/"+t+" (hack/tools.sh "+t+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s (.ci/run installs the Debian packages containerd runc containernetworking-plugins iptables; `make cluster-tools` builds the binaries)", strings.Join(missing, ", "))
	}
	return nil
}

func (o *Options) defaults() {
	if o.Bridge == "" {
		o.Bridge = "exs0"
	}
	if o.PodCIDR == "" {
		o.PodCIDR = "10.213.0.0/24"
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.214.0.0/24"
	}
	if o.Log == nil {
		o.Log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "cluster: "+f+"\n", a...) }
	}
}

func nthIP(cidr string, n int) (net.IP, *net.IPNet, error) {
	_, ipn, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, nil, err
	}
	ip := ipn.IP.To4()
	if ip == nil {
		return nil, nil, fmt.Errorf("%s: only IPv4 ranges are supported", cidr)
	}
	out := make(net.IP, 4)
	copy(out, ip)
	out[3] += byte(n)
	return out, ipn, nil
}

// Start brings the cluster up and returns when the node is Ready and
// CoreDNS answers. On error everything started is torn down again.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	opts.defaults()
	if err := Preflight(opts.Root); err != nil {
		return nil, err
	}
	if _, err := net.InterfaceByName(opts.Bridge); err == nil {
		return nil, fmt.Errorf("bridge %s exists: another cluster is running (make cluster?) or a teardown failed", opts.Bridge)
	}
	nodeIP, _, err := nthIP(opts.PodCIDR, 1)
	if err != nil {
		return nil, fmt.Errorf("PodCIDR: %w", err)
	}
	dnsIP, _, err := nthIP(opts.ServiceCIDR, 10)
	if err != nil {
		return nil, fmt.Errorf("ServiceCIDR: %w", err)
	}
	apiIP, _, _ := nthIP(opts.ServiceCIDR, 1)
	before, err := Snapshot()
	if err != nil {
		return nil, fmt.Errorf("reading the host state: %w", err)
	}
	dir, err := os.MkdirTemp("", "exs-cluster-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{opts: opts, Dir: dir, NodeIP: nodeIP, DNSIP: dnsIP, NodeName: "exs-node",
		cgroupRoot: "/" + filepath.Base(dir), before: before, sysctls: map[string]string{}}
	for _, k := range restoredSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			c.sysctls[k] = string(v)
		}
	}
	defer func() {
		if err != nil {
			c.opts.Log("start failed (%v); tearing down; logs were in %s", err, dir)
			for _, l := range c.logTails() {
				c.opts.Log("%s", l)
			}
			if terr := c.Stop(); terr != nil {
				err = fmt.Errorf("%w; teardown: %v", err, terr)
			}
		}
	}()
	for _, d := range []string{"logs", "etcd", "pki", "containerd/root", "containerd/state", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return c, err
		}
	}
	if err := c.network(); err != nil {
		return c, fmt.Errorf("network: %w", err)
	}
	if err := c.certificates(apiIP); err != nil {
		return c, fmt.Errorf("certificates: %w", err)
	}
	if err := c.controlPlane(ctx); err != nil {
		return c, err
	}
	if err := c.node(ctx); err != nil {
		return c, err
	}
	if err := c.dns(ctx); err != nil {
		return c, fmt.Errorf("CoreDNS: %w", err)
	}
	return c, nil
}

// network creates the bridge with the node's address, a host route to the
// service range over it, and the guard chain that keeps its traffic on
// the machine.
func (c *Cluster) network() error {
	ones, _ := mask(c.opts.PodCIDR)
	for _, args := range [][]string{
		{"link", "add", c.opts.Bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", c.NodeIP, ones), "dev", c.opts.Bridge},
		{"link", "set", c.opts.Bridge, "up"},
		{"route", "add", c.opts.ServiceCIDR, "dev", c.opts.Bridge, "src", c.NodeIP.String()},
	} {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(ipt); err != nil {
			continue
		}
		for _, args := range [][]string{
			{"-N", guardChain},
			{"-A", guardChain, "-i", c.opts.Bridge, "!", "-o", c.opts.Bridge, "-j", "DROP"},
			{"-A", guardChain, "-o", c.opts.Bridge, "!", "-i", c.opts.Bridge, "-j", "DROP"},
			{"-I", "FORWARD", "1", "-j", guardChain},
		} {
			if err := run(ipt, append([]string{"-w"}, args...)...); err != nil {
				return err
			}
		}
	}
	// The CNI configuration: the bridge above, addresses from host-local,
	// a route to the services only, no masquerade.
	conf := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "exs",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": %q,
      "ranges": [[{"subnet": %q, "gateway": %q}]],
      "routes": [{"dst": %q}]
    }
  }]
}
`, c.opts.Bridge, filepath.Join(c.Dir, "cni/ipam"), c.opts.PodCIDR, c.NodeIP.String(), c.opts.ServiceCIDR)
	return os.WriteFile(filepath.Join(c.Dir, "cni/net.d/10-exs.conflist"), []byte(conf), 0o600)
}

// guardChain drops what would be forwarded between the bridge and any
// other interface.
const guardChain = "EXS-CLUSTER-GUARD"

func mask(cidr string) (int, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return 0, err
	}
	ones, _ := n.Mask.Size()
	return ones, nil
}

func (c *Cluster) certificates(apiIP net.IP) error {
	p, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return err
	}
	c.pki = p
	if err := p.serviceAccountKey(); err != nil {
		return err
	}
	loop := net.ParseIP("127.0.0.1")
	for _, id := range []struct {
		name, cn string
		orgs     []string
		ips      []net.IP
		dns      []string
	}{
		{"apiserver", "kube-apiserver", nil, []net.IP{c.NodeIP, apiIP, loop},
			[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{"admin", "exs-admin", []string{"system:masters"}, nil, nil},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil},
		{"controller-manager", "system:kube-controller-manager", nil, []net.IP{loop}, nil},
		{"scheduler", "system:kube-scheduler", nil, []net.IP{loop}, nil},
		{"kubelet", "system:node:" + c.NodeName, []string{"system:nodes"}, []net.IP{c.NodeIP}, []string{c.NodeName}},
		{"kube-proxy", "system:kube-proxy", nil, nil, nil},
	} {
		if err := p.issue(id.name, id.cn, id.orgs, id.ips, id.dns); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) logPath(name string) string { return filepath.Join(c.Dir, "logs", name+".log") }

// start runs a component in its own process group, its output in logs/.
func (c *Cluster) start(name, bin string, args ...string) (*proc, error) {
	f, err := os.Create(c.logPath(name))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	c.procs = append(c.procs, p)
	c.opts.Log("started %s (pid %d)", name, cmd.Process.Pid)
	return p, nil
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.opts.Root, "bin", name) }

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// controlPlane starts etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler and waits for the API server.
func (c *Cluster) controlPlane(ctx context.Context) error {
	ports := map[string]int{}
	for _, n := range []string{"etcd", "etcd-peer", "kcm", "scheduler"} {
		p, err := freePort("127.0.0.1")
		if err != nil {
			return err
		}
		ports[n] = p
	}
	api, err := freePort(c.NodeIP.String())
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd"])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-peer"])
	if _, err := c.start("etcd", c.bin("etcd"), "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync"); err != nil {
		return err
	}
	p := c.pki.path
	if _, err := c.start("kube-apiserver", c.bin("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address="+c.NodeIP.String(), "--advertise-address="+c.NodeIP.String(),
		"--secure-port="+strconv.Itoa(api),
		"--cert-dir="+filepath.Join(c.Dir, "pki", "apiserver-generated"),
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--service-cluster-ip-range="+c.opts.ServiceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	server := fmt.Sprintf("https://%s", net.JoinHostPort(c.NodeIP.String(), strconv.Itoa(api)))
	c.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	for _, n := range []string{"admin", "controller-manager", "scheduler", "kubelet", "kube-proxy"} {
		if err := c.pki.kubeconfig(filepath.Join(c.Dir, n+".kubeconfig"), n, server); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.Config = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
		b, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(b) == "ok", nil
	}); err != nil {
		return err
	}
	kcm := filepath.Join(c.Dir, "controller-manager.kubeconfig")
	if _, err := c.start("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig="+kcm, "--authentication-kubeconfig="+kcm, "--authorization-kubeconfig="+kcm,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports["kcm"]),
		"--cert-dir="+filepath.Join(c.Dir, "pki", "kcm-generated"),
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p("sa.key"),
		"--root-ca-file="+p("ca.crt"),
		"--service-cluster-ip-range="+c.opts.ServiceCIDR,
		"--profiling=false",
	); err != nil {
		return err
	}
	sch := filepath.Join(c.Dir, "scheduler.kubeconfig")
	if _, err := c.start("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig="+sch, "--authentication-kubeconfig="+sch, "--authorization-kubeconfig="+sch,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports["scheduler"]),
		"--cert-dir="+filepath.Join(c.Dir, "pki", "scheduler-generated"),
		"--leader-elect=false", "--profiling=false",
	); err != nil {
		return err
	}
	return nil
}

// node prepares the cgroups, starts containerd, imports the cluster's own
// images, and starts the kubelet and kube-proxy.
func (c *Cluster) node(ctx context.Context) error {
	if err := c.cgroups(); err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	c.ContainerdSocket = filepath.Join(c.Dir, "containerd", "containerd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # The machine's sandbox lacks CAP_SYS_RESOURCE: without this runc fails
  # with "can't get final child's PID from pipe" on the pause container's
  # negative oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  # The pods' network namespaces under the state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
    max_conf_num = 1
`, filepath.Join(c.Dir, "containerd/root"), filepath.Join(c.Dir, "containerd/state"),
		c.ContainerdSocket, c.ContainerdSocket+".ttrpc", filepath.Join(c.Dir, "containerd/opt"),
		PauseImage, filepath.Join(c.Dir, "containerd/runc"), filepath.Join(c.Dir, "cni/net.d"))
	cfgPath := filepath.Join(c.Dir, "containerd", "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	if _, err := c.start("containerd", "containerd", "--config="+cfgPath); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "containerd", time.Minute, func(context.Context) (bool, error) {
		return exec.Command("ctr", "--address", c.ContainerdSocket, "version").Run() == nil, nil
	}); err != nil {
		return err
	}
	imgs, err := c.systemImages()
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	if err := c.ImportImages(ctx, imgs...); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	kubeletPort, err := freePort(c.NodeIP.String())
	if err != nil {
		return err
	}
	healthz, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	p := c.pki.path
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: ""
podLogsDirectory: %s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.inodesFree: 1%%
evictionPressureTransitionPeriod: 10s
syncFrequency: 10s
fileCheckFrequency: 0s
staticPodPath: ""
serializeImagePulls: false
registerNode: true
`, c.NodeIP, kubeletPort, healthz, p("kubelet.crt"), p("kubelet.key"), p("ca.crt"), c.cgroupRoot,
		c.ContainerdSocket, c.DNSIP, filepath.Join(c.Dir, "pod-logs"))
	kcfgPath := filepath.Join(c.Dir, "kubelet-config.yaml")
	if err := os.WriteFile(kcfgPath, []byte(kcfg), 0o600); err != nil {
		return err
	}
	if _, err := c.start("kubelet", c.bin("kubelet"),
		"--config="+kcfgPath,
		"--kubeconfig="+filepath.Join(c.Dir, "kubelet.kubeconfig"),
		"--root-dir="+filepath.Join(c.Dir, "kubelet"),
		"--cert-dir="+filepath.Join(c.Dir, "pki", "kubelet-generated"),
		"--node-ip="+c.NodeIP.String(),
		"--hostname-override="+c.NodeName,
		"--v=1",
	); err != nil {
		return err
	}
	pport, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	mport, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	pcfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
nodePortAddresses: [%s/32]
iptables:
  localhostNodePorts: false
  masqueradeAll: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, filepath.Join(c.Dir, "kube-proxy.kubeconfig"), c.NodeName, c.opts.PodCIDR, pport, mport, c.NodeIP)
	pcfgPath := filepath.Join(c.Dir, "kube-proxy-config.yaml")
	if err := os.WriteFile(pcfgPath, []byte(pcfg), 0o600); err != nil {
		return err
	}
	if _, err := c.start("kube-proxy", c.bin("kube-proxy"), "--config="+pcfgPath); err != nil {
		return err
	}
	return c.waitFor(ctx, "node Ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return len(n.Spec.Taints) == 0, nil
			}
		}
		return false, nil
	})
}

// cgroups creates the kubelet's cgroup root in every v1 hierarchy, with
// cpuset's cpus and mems copied from the parent (the kubelet expects it to
// exist and a new cpuset has none).
func (c *Cluster) cgroups() error {
	hier, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, h := range hier {
		base := filepath.Join("/sys/fs/cgroup", h.Name())
		if h.Name() == "unified" {
			continue
		}
		if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
			continue
		}
		d := filepath.Join(base, c.cgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if h.Name() == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(base, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// waitFor polls cond every half second until it holds or timeout passes.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			c.opts.Log("%s", what)
			return nil
		}
		for _, p := range c.procs {
			if p.stopped {
				continue
			}
			select {
			case <-p.done:
				return fmt.Errorf("waiting for %s: %s exited: %v (log %s)", what, p.name, p.err, c.logPath(p.name))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s", what, timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// dns runs CoreDNS as a Deployment behind the kube-dns Service at DNSIP,
// answering for cluster.local only: it forwards nothing off the machine.
func (c *Cluster) dns(ctx context.Context) error {
	if err := c.Apply(ctx, coreDNSManifests(c.DNSIP.String())); err != nil {
		return err
	}
	return c.waitFor(ctx, "CoreDNS ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return deploymentReady(d), nil
	})
}

func deploymentReady(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == want && d.Status.UpdatedReplicas == want
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// logTails returns the last lines of each component's log.
func (c *Cluster) logTails() []string {
	var out []string
	for _, p := range c.procs {
		b, err := os.ReadFile(c.logPath(p.name))
		if err != nil {
			continue
		}
		ls := lines(b)
		if len(ls) > 15 {
			ls = ls[len(ls)-15:]
		}
		for _, l := range ls {
			out = append(out, p.name+": "+l)
		}
	}
	return out
}
