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

package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// legitimatelyEmpty lists the expressions that return no series during the
// live run, each with the reason: an error the run does not cause.
var legitimatelyEmpty = map[string]string{
	"alert ExternalSourceArtifactServer5xx": "no artifact download fails during the run (no storage read error)",
	"alert ExternalSourceOAuth2TokenErrors": "no source of the run uses OAuth2, so no token is requested",
}

// The controller's pod, as the PodMonitors label its series.
const (
	promNamespace = "flux-system"
	promPod       = "externalsource-controller-live"
	managerJob    = promNamespace + "/externalsource-controller"
	sidecarJob    = promNamespace + "/externalsource-hook-executor"
	tenant        = "team-a"
)

// upstream serves JSON, or fails with 500 once broken.
type upstream struct {
	mu     sync.Mutex
	broken bool
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.broken {
		http.Error(w, "upstream is broken", http.StatusInternalServerError)
		return
	}
	fmt.Fprint(w, `{"plan": "standard", "price": 10}`)
}

func (u *upstream) breakIt() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.broken = true
}

// TestLiveMonitoring runs the controller and its hook sidecar against a
// real kube-apiserver, kube-state-metrics with config/monitoring's custom
// resource configuration, and a real Prometheus scraping the three (as the
// PodMonitors label them) with the shipped alerts, the not-Ready window
// shortened through its parameter. A source whose upstream starts failing
// fires ExternalSourceNotReady; then every expression of the alerts and of
// the dashboard returns series, or is listed above with its reason.
func TestLiveMonitoring(t *testing.T) {
	g := NewWithT(t)
	root := devenv.Root()
	prometheus, err := exec.LookPath("prometheus")
	g.Expect(err).ToNot(HaveOccurred(), "prometheus not found: install Debian's prometheus package (.ci/run does)")
	ksm := filepath.Join(root, "bin", "kube-state-metrics")
	_, err = os.Stat(ksm)
	g.Expect(err).ToNot(HaveOccurred(), "%s not found: run `make tools` first", ksm)
	jq, err := exec.LookPath("jq")
	g.Expect(err).ToNot(HaveOccurred(), "jq not found: the hooks of this test run it (.ci/run installs it)")
	g.Expect(jq).To(Equal("/usr/bin/jq"), "the example whitelist allows /usr/bin/jq")

	env, err := devenv.Start()
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	g.Expect(err).ToNot(HaveOccurred())
	ctx := context.Background()
	for _, ns := range []string{promNamespace, tenant} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	g.Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())
	bin := filepath.Join(dir, "externalsource-controller")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	out, err := build.CombinedOutput()
	g.Expect(err).ToNot(HaveOccurred(), "building the controller: %s", out)

	addr := func() string {
		a, err := devenv.FreeAddr()
		g.Expect(err).ToNot(HaveOccurred())
		return a
	}
	managerAddr, sidecarAddr, storageAddr, ksmAddr, ksmTelemetryAddr, promAddr := addr(), addr(), addr(), addr(), addr(), addr()

	whitelist := filepath.Join(dir, "whitelist.yaml")
	g.Expect(writeExampleWhitelist(root, whitelist)).To(Succeed())
	socket := filepath.Join(dir, "hook.sock")
	start(t, dir, "hook-executor", bin, kubeconfig, "hook-executor", "--socket="+socket,
		"--hook-whitelist="+whitelist, "--metrics-addr="+sidecarAddr, "--log-encoding=console")
	start(t, dir, "externalsource-controller", bin, kubeconfig,
		"--storage-backend=memory", "--storage-addr="+storageAddr, "--storage-adv-addr="+storageAddr,
		"--metrics-addr="+managerAddr, "--health-addr=127.0.0.1:0",
		"--hook-executor-socket="+socket, "--hook-whitelist="+whitelist,
		"--enable-leader-election", "--allowed-address-ranges=127.0.0.0/8", "--log-encoding=console")
	ksmHost, ksmPort := splitAddr(ksmAddr)
	ksmTHost, ksmTPort := splitAddr(ksmTelemetryAddr)
	start(t, dir, "kube-state-metrics", ksm, kubeconfig, "--kubeconfig="+kubeconfig,
		"--custom-resource-state-only",
		"--custom-resource-state-config-file="+filepath.Join(root, "config", "monitoring", "kube-state-metrics-config.yaml"),
		"--host="+ksmHost, "--port="+ksmPort, "--telemetry-host="+ksmTHost, "--telemetry-port="+ksmTPort)

	// The shipped rules with the not-Ready window shortened by its
	// parameter: the same rule, a shorter `for`.
	ruleGroups, _ := renderGroups(g, "notReadyFor=10s")
	g.Expect(os.WriteFile(filepath.Join(dir, "rules.yaml"), ruleGroups, 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "prometheus.yaml"), []byte(promConfig(managerAddr, sidecarAddr, ksmAddr)), 0o644)).To(Succeed())
	start(t, dir, "prometheus", prometheus, "",
		"--config.file="+filepath.Join(dir, "prometheus.yaml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr)
	prom := &promAPI{base: "http://" + promAddr}
	g.Eventually(func(g Gomega) {
		res, err := http.Get(prom.base + "/-/ready")
		g.Expect(err).ToNot(HaveOccurred())
		res.Body.Close()
		g.Expect(res.StatusCode).To(Equal(http.StatusOK))
	}, time.Minute, 500*time.Millisecond).Should(Succeed(), "prometheus did not become ready (see %s)", filepath.Join(dir, "prometheus.log"))
	g.Eventually(func(g Gomega) {
		r := prom.query(g, `up == 1`)
		jobs := map[string]bool{}
		for _, s := range r {
			jobs[s.Metric["job"]] = true
		}
		g.Expect(jobs).To(And(HaveKey(managerJob), HaveKey(sidecarJob), HaveKey("kube-state-metrics")))
	}, time.Minute, time.Second).Should(Succeed(), "prometheus does not scrape the three targets")

	// The sources: one steady, one whose upstream will fail, one whose
	// hook fails, one whose hook the whitelist refuses (Stalled), one
	// suspended.
	steady, flaky := &upstream{}, &upstream{}
	steadySrv, flakySrv := httptest.NewServer(steady), httptest.NewServer(flaky)
	t.Cleanup(steadySrv.Close)
	t.Cleanup(flakySrv.Close)
	jqHook := func(filter string) *exsv1beta1.Hooks {
		return &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "shape", Command: "jq", Args: []string{"-c", filter}}}}
	}
	sources := []*exsv1beta1.ExternalSource{
		source("steady", steadySrv.URL, jqHook("{price: .price}"), false),
		source("flaky", flakySrv.URL, nil, false),
		source("hook-fails", steadySrv.URL, jqHook(".plan | keys"), false),
		source("rejected", steadySrv.URL, &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "fetch", Command: "curl"}}}, false),
		source("paused", steadySrv.URL, nil, true),
	}
	for _, s := range sources {
		g.Expect(c.Create(ctx, s)).To(Succeed())
	}
	var artifactURL string
	for _, name := range []string{"steady", "flaky"} {
		g.Eventually(func(g Gomega) {
			cur := &exsv1beta1.ExternalSource{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: tenant, Name: name}, cur)).To(Succeed())
			g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%s: %v", name, conditions.Get(cur, meta.ReadyCondition))
			g.Expect(cur.Status.Artifact).ToNot(BeNil())
			artifactURL = cur.Status.Artifact.URL
		}, 2*time.Minute, time.Second).Should(Succeed())
	}
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "rejected"}, cur)).To(Succeed())
		g.Expect(conditions.IsStalled(cur)).To(BeTrue(), "%v", cur.Status.Conditions)
	}, time.Minute, time.Second).Should(Succeed())
	// A consumer's download, for the artifact server's series.
	res, err := http.Get(artifactURL)
	g.Expect(err).ToNot(HaveOccurred())
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	g.Expect(res.StatusCode).To(Equal(http.StatusOK))

	// Quiet while flaky is Ready: kube-state-metrics reports it Ready and
	// no ExternalSourceNotReady names it.
	g.Eventually(func(g Gomega) {
		r := prom.query(g, `gotk_resource_info{customresource_kind="ExternalSource", name="flaky", ready="True"}`)
		g.Expect(r).To(HaveLen(1))
	}, time.Minute, time.Second).Should(Succeed())
	g.Expect(prom.alerts(g, "ExternalSourceNotReady", "flaky")).To(BeEmpty())

	// The upstream fails; a reconcile request (as `flux reconcile`) makes
	// the controller see it now rather than at the next interval.
	flaky.breakIt()
	requestReconcile(g, c, "flaky")
	broke := time.Now()
	g.Eventually(func(g Gomega) {
		a := prom.alerts(g, "ExternalSourceNotReady", "flaky")
		g.Expect(a).To(HaveLen(1))
		g.Expect(a[0].State).To(Equal("firing"))
		g.Expect(a[0].Labels).To(HaveKeyWithValue("exported_namespace", tenant))
		g.Expect(a[0].Labels).To(HaveKeyWithValue("severity", "warning"))
		g.Expect(a[0].Annotations["summary"]).To(Equal("ExternalSource team-a/flaky is not Ready"))
		g.Expect(a[0].Annotations["runbook_url"]).To(HaveSuffix("docs/monitoring.md#externalsourcenotready"))
	}, 2*time.Minute, time.Second).Should(Succeed(), "ExternalSourceNotReady did not fire for team-a/flaky")
	t.Logf("ExternalSourceNotReady fired %s after the upstream broke (for: 10s)", time.Since(broke).Round(time.Second))

	// No dead panel, no dead alert.
	exprs := expressions(g, root, ruleGroups)
	g.Expect(len(exprs)).To(BeNumerically(">=", 40))
	for id := range legitimatelyEmpty {
		g.Expect(exprs).To(HaveKey(id), "legitimatelyEmpty names %q, which is not an expression", id)
	}
	var empty []string
	g.Eventually(func(g Gomega) {
		empty = nil
		for id, e := range exprs {
			// Every expression is valid PromQL, excused or not.
			r := prom.query(g, e.full)
			_ = r
			if _, ok := legitimatelyEmpty[id]; ok {
				continue
			}
			if len(prom.query(g, e.live)) == 0 {
				empty = append(empty, fmt.Sprintf("%s: %s", id, e.live))
			}
		}
		g.Expect(empty).To(BeEmpty())
	}, time.Minute, 2*time.Second).Should(Succeed(), "expressions with no series during the run")
	// The excused ones are still empty: an exception never hides a series
	// that has come to exist (then the exception must go).
	for id := range legitimatelyEmpty {
		g.Expect(prom.query(g, exprs[id].live)).To(BeEmpty(), "%s returns series now: remove it from legitimatelyEmpty", id)
	}
}

// source returns an ExternalSource of the tenant fetching url.
func source(name, url string, hooks *exsv1beta1.Hooks, suspend bool) *exsv1beta1.ExternalSource {
	return &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenant},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: time.Minute},
			Suspend:         suspend,
			DestinationPath: "data.json",
			Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP,
				HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: url}},
			Hooks: hooks,
		},
	}
}

// requestReconcile sets reconcile.fluxcd.io/requestedAt, as `flux
// reconcile` does.
func requestReconcile(g Gomega, c client.Client, name string) {
	g.Eventually(func() error {
		cur := &exsv1beta1.ExternalSource{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: tenant, Name: name}, cur); err != nil {
			return err
		}
		a := cur.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[meta.ReconcileRequestAnnotation] = time.Now().Format(time.RFC3339Nano)
		cur.SetAnnotations(a)
		return c.Update(context.Background(), cur)
	}, time.Minute).Should(Succeed())
}

// promConfig scrapes the manager and the sidecar with the labels the
// PodMonitors give them (job <namespace>/<monitor>, namespace, pod), and
// kube-state-metrics, every second, and evaluates the rules every second.
func promConfig(manager, sidecar, ksm string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yaml
scrape_configs:
  - job_name: %[4]s
    static_configs:
      - targets: [%[1]q]
        labels: {namespace: %[6]s, pod: %[7]s, container: manager}
  - job_name: %[5]s
    static_configs:
      - targets: [%[2]q]
        labels: {namespace: %[6]s, pod: %[7]s, container: hook-executor}
  - job_name: kube-state-metrics
    honor_labels: true
    static_configs:
      - targets: [%[3]q]
`, manager, sidecar, ksm, managerJob, sidecarJob, promNamespace, promPod)
}

// start runs a process for the test, its output in dir/<name>.log, and
// stops it at the end. kubeconfig, when set, is its KUBECONFIG.
func start(t *testing.T, dir, name, bin, kubeconfig string, args ...string) {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNTIME_NAMESPACE="+promNamespace)
	if kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: a test binary that dies takes its processes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		log.Close()
		if t.Failed() || os.Getenv("TEST_VERBOSE") != "" {
			b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("==== %s (tail)\n%s", name, b)
		}
	})
}

func splitAddr(a string) (string, string) {
	i := strings.LastIndex(a, ":")
	return a[:i], a[i+1:]
}

// writeExampleWhitelist writes the whitelist of the shipped ConfigMap
// (config/manager/hook-whitelist.yaml) to path.
func writeExampleWhitelist(root, path string) error {
	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "hook-whitelist.yaml"))
	if err != nil {
		return err
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(b, &cm); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(cm.Data["whitelist.yaml"]), 0o644)
}

// promAPI queries Prometheus' HTTP API.
type promAPI struct{ base string }

type sample struct {
	Metric map[string]string `json:"metric"`
}

// query evaluates an instant query; an error (invalid PromQL, an
// unknown function) fails the caller.
func (p *promAPI) query(g Gomega, q string) []sample {
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	p.get(g, "/api/v1/query?query="+url.QueryEscape(q), &body)
	g.Expect(body.Status).To(Equal("success"), "query %s: %s", q, body.Error)
	var r []sample
	if err := json.Unmarshal(body.Data.Result, &r); err != nil {
		// A scalar (e.g. a bare number): one value, no series labels.
		return []sample{{}}
	}
	return r
}

type alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// alerts returns the active alerts of a name (pending or firing) for one
// source of the tenant.
func (p *promAPI) alerts(g Gomega, name, source string) []alert {
	var body struct {
		Data struct {
			Alerts []alert `json:"alerts"`
		} `json:"data"`
	}
	p.get(g, "/api/v1/alerts", &body)
	var out []alert
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name && a.Labels["name"] == source && a.Labels["exported_namespace"] == tenant {
			out = append(out, a)
		}
	}
	return out
}

func (p *promAPI) get(g Gomega, path string, into any) {
	res, err := http.Get(p.base + path)
	g.Expect(err).ToNot(HaveOccurred())
	defer res.Body.Close()
	g.Expect(json.NewDecoder(res.Body).Decode(into)).To(Succeed())
}

// expr is one PromQL expression of the rules or the dashboard: full as
// written (with the dashboard's variables given their "All" values), and
// live, the part that must have series during the run.
type expr struct{ full, live string }

// expressions collects every PromQL expression of the rules and of
// config/monitoring/dashboards/externalsource.json, by id ("alert <name>",
// "panel <title>/<refId>", "variable <name>").
func expressions(g Gomega, root string, ruleGroups []byte) map[string]expr {
	out := map[string]expr{}
	var rf ruleFile
	g.Expect(yaml.UnmarshalStrict(ruleGroups, &rf)).To(Succeed())
	for _, grp := range rf.Groups {
		for _, r := range grp.Rules {
			out["alert "+r.Alert] = expr{full: r.Expr, live: liveForm(r.Expr)}
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "monitoring", "dashboards", "externalsource.json"))
	g.Expect(err).ToNot(HaveOccurred())
	for id, e := range dashboardExpressions(g, b) {
		out[id] = expr{full: e, live: liveForm(e)}
	}
	return out
}

// dashboardExpressions returns the PromQL of every panel target and of
// every query variable (the series selector of label_values), with the
// variables replaced as Grafana would for "All" and a short range.
func dashboardExpressions(g Gomega, dashboard []byte) map[string]string {
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	g.Expect(json.Unmarshal(dashboard, &d)).To(Succeed())
	vars := strings.NewReplacer("$namespace", ".*", "$source", ".*", "$__rate_interval", "1m", "$__interval", "1m", "${datasource}", "")
	out := map[string]string{}
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			g.Expect(t.Expr).ToNot(BeEmpty(), "panel %s/%s has no expression", p.Title, t.RefID)
			out["panel "+p.Title+"/"+t.RefID] = vars.Replace(t.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*[a-z_]+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		m := labelValues.FindStringSubmatch(s)
		g.Expect(m).ToNot(BeNil(), "variable %s: want label_values(selector, label), got %q", v.Name, s)
		out["variable "+v.Name] = vars.Replace(m[1])
	}
	return out
}

var (
	trailingComparison = regexp.MustCompile(`(?s)^(.*?)\s*(==|!=|>=|<=|>|<)\s*[-+0-9.eE]+\s*$`)
	orVectorZero       = regexp.MustCompile(`(?s)^(.*?)\s+or\s+vector\(0\)\s*$`)
	absentCall         = regexp.MustCompile(`(?s)^absent\((.*)\)\s*$`)
)

// liveForm is the part of an expression whose series must exist while the
// controller runs: without the alert's threshold (a healthy run is below
// it, and a series compared is a series that exists), without a fallback
// "or vector(0)" (which would hide a renamed metric) and inside absent().
func liveForm(e string) string {
	e = strings.TrimSpace(e)
	for {
		switch {
		case absentCall.MatchString(e):
			e = strings.TrimSpace(absentCall.FindStringSubmatch(e)[1])
		case orVectorZero.MatchString(e):
			e = orVectorZero.FindStringSubmatch(e)[1]
		case trailingComparison.MatchString(e):
			e = trailingComparison.FindStringSubmatch(e)[1]
		default:
			return e
		}
	}
}
