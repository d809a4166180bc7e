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

package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

func TestInvoked(t *testing.T) {
	tests := []struct {
		argv    []string
		ok      bool
		args    []string
		display string
	}{
		{argv: []string{"/usr/local/bin/kubectl-externalsource", "get", "-A"}, ok: true,
			args: []string{"get", "-A"}, display: "kubectl externalsource"},
		{argv: []string{"kubectl-externalsource"}, ok: true, args: []string{}, display: "kubectl externalsource"},
		{argv: []string{"/home/me/bin/kubectl-exs", "reconcile", "x"}, ok: true, args: []string{"reconcile", "x"},
			display: "kubectl exs"},
		{argv: []string{"/externalsource-controller", "ctl", "reconcile", "x"}, ok: true,
			args: []string{"reconcile", "x"}, display: "externalsource-controller ctl"},
		{argv: []string{"/home/me/bin/kubectl_complete-externalsource", "get", "pri"}, ok: true,
			args: []string{"__complete", "get", "pri"}, display: "kubectl externalsource"},
		{argv: []string{"/externalsource-controller"}},
		{argv: []string{"/externalsource-controller", "--concurrent=4"}},
		{argv: []string{"/externalsource-controller", "hook-executor", "ctl"}},
		{argv: []string{"/bin/kubectl-externalsource-old", "get"}},
		{argv: nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.argv), func(t *testing.T) {
			g := NewWithT(t)
			args, display, ok := Invoked(tt.argv)
			g.Expect(ok).To(Equal(tt.ok))
			if tt.ok {
				g.Expect(args).To(Equal(tt.args))
				g.Expect(display).To(Equal(tt.display))
			}
		})
	}
}

// writeKubeconfig writes a kubeconfig with two contexts: "team-a" (the
// current one, namespace team-a) and "plain" (no namespace), both for
// server, and points KUBECONFIG at it.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["team-a"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "team-a"}
	cfg.Contexts["plain"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "team-a"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	return path
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestRunExitCodes runs the command line up to the point where it would
// talk to a cluster (none listens): bad command lines exit 2 without a
// request, good ones get as far as the API server and exit 3.
func TestRunExitCodes(t *testing.T) {
	writeKubeconfig(t, "https://"+closedAddr(t))
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no command prints the help", args: nil, code: ExitOK, stdout: "Available Commands"},
		{name: "--help", args: []string{"reconcile", "--help"}, code: ExitOK, stdout: "--force"},
		{name: "unknown command", args: []string{"describe"}, code: ExitUsage, stderr: `unknown command "describe"`},
		{name: "unknown flag", args: []string{"get", "--bogus"}, code: ExitUsage, stderr: "unknown flag: --bogus"},
		{name: "bad duration", args: []string{"get", "--timeout=soon"}, code: ExitUsage, stderr: "invalid argument"},
		{name: "get two names", args: []string{"get", "a", "b"}, code: ExitUsage, stderr: "accepts at most 1 arg"},
		{name: "get a name in every namespace", args: []string{"get", "a", "-A"}, code: ExitUsage,
			stderr: "cannot be combined with --all-namespaces"},
		{name: "reconcile without a name", args: []string{"reconcile"}, code: ExitUsage, stderr: "exactly one NAME"},
		{name: "reconcile two names", args: []string{"reconcile", "a", "b", "--force"}, code: ExitUsage,
			stderr: "exactly one NAME"},
		{name: "suspend nothing", args: []string{"suspend"}, code: ExitUsage, stderr: "at least one NAME (or --all)"},
		{name: "suspend names and --all", args: []string{"suspend", "a", "--all"}, code: ExitUsage,
			stderr: "cannot be combined with --all"},
		{name: "resume nothing", args: []string{"resume"}, code: ExitUsage, stderr: "at least one NAME (or --all)"},
		{name: "events of a name everywhere", args: []string{"events", "a", "-A"}, code: ExitUsage,
			stderr: "cannot be combined"},
		{name: "export nothing", args: []string{"export"}, code: ExitUsage, stderr: "a NAME (or --all) is required"},
		{name: "export a name and --all", args: []string{"export", "a", "--all"}, code: ExitUsage,
			stderr: "cannot be combined with --all"},
		{name: "an unknown context", args: []string{"get", "--context", "nope"}, code: ExitError,
			stderr: `context "nope" does not exist`},
		{name: "a missing kubeconfig", args: []string{"get", "--kubeconfig", "/nonexistent/kubeconfig"},
			code: ExitError, stderr: "/nonexistent/kubeconfig"},
		{name: "no API server", args: []string{"get", "--timeout=10s"}, code: ExitError, stderr: "connection refused"},
		{name: "no API server to reconcile with", args: []string{"reconcile", "a", "--timeout=10s"}, code: ExitError,
			stderr: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var stdout, stderr bytes.Buffer
			code := Run("kubectl externalsource", tt.args, &stdout, &stderr)
			g.Expect(code).To(Equal(tt.code), "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
			g.Expect(stdout.String()).To(ContainSubstring(tt.stdout))
			g.Expect(stderr.String()).To(ContainSubstring(tt.stderr))
			if tt.code == ExitUsage {
				g.Expect(stderr.String()).To(ContainSubstring("Run 'kubectl externalsource --help' for usage."))
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		started bool
		code    int
	}{
		{name: "success", started: true, code: ExitOK},
		{name: "cobra's parsing", err: errors.New(`unknown command "x"`), code: ExitUsage},
		{name: "arguments checked by a command", err: usagef("bad"), started: true, code: ExitUsage},
		{name: "not ready, wrapped", err: fmt.Errorf("x: %w", &notReadyError{msg: "m"}), started: true, code: ExitNotReady},
		{name: "anything else", err: errors.New("connection refused"), started: true, code: ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(exitCode(tt.err, tt.started)).To(Equal(tt.code))
		})
	}
}

func TestResolveNamespace(t *testing.T) {
	path := writeKubeconfig(t, "https://127.0.0.1:6443")
	tests := []struct {
		name string
		o    options
		want string
	}{
		{name: "the current context's namespace", want: "team-a"},
		{name: "--context without a namespace", o: options{kubecontext: "plain"}, want: "default"},
		{name: "-n wins", o: options{namespace: "x"}, want: "x"},
		{name: "-n wins over --context", o: options{kubecontext: "plain", namespace: "y"}, want: "y"},
		{name: "--kubeconfig", o: options{kubeconfig: path}, want: "team-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns, err := tt.o.resolveNamespace()
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(ns).To(Equal(tt.want))
		})
	}
}

// source returns an ExternalSource with the given status.
func source(ns, name string, suspend bool, revision string, ready *metav1.Condition) exsv1beta1.ExternalSource {
	obj := exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 2}}
	obj.Spec.Suspend = suspend
	if revision != "" {
		obj.Status.Artifact = &meta.Artifact{Revision: revision}
	}
	if ready != nil {
		obj.Status.Conditions = []metav1.Condition{*ready}
	}
	return obj
}

func readyCond(status metav1.ConditionStatus, gen int64, msg string) *metav1.Condition {
	return &metav1.Condition{Type: meta.ReadyCondition, Status: status, ObservedGeneration: gen, Message: msg}
}

func TestWriteSourceTable(t *testing.T) {
	items := []exsv1beta1.ExternalSource{
		source("flux-system", "pricing", false, "latest@sha256:abc",
			readyCond(metav1.ConditionTrue, 2, "stored artifact for revision 'latest@sha256:abc'")),
		source("flux-system", "flags", true, "latest@sha256:0123", readyCond(metav1.ConditionFalse, 2,
			"fetch failed: 500\nupstream said:\tbroken")),
		source("team-b", "new", false, "", nil),
	}
	tests := []struct {
		name          string
		withNamespace bool
		want          string
	}{
		{name: "one namespace", want: "" +
			"NAME      REVISION             SUSPENDED   READY     MESSAGE\n" +
			"pricing   latest@sha256:abc    False       True      stored artifact for revision 'latest@sha256:abc'\n" +
			"flags     latest@sha256:0123   True        False     fetch failed: 500 upstream said: broken\n" +
			"new                            False       Unknown   waiting to be reconciled\n"},
		{name: "every namespace", withNamespace: true, want: "" +
			"NAMESPACE     NAME      REVISION             SUSPENDED   READY     MESSAGE\n" +
			"flux-system   pricing   latest@sha256:abc    False       True      stored artifact for revision 'latest@sha256:abc'\n" +
			"flux-system   flags     latest@sha256:0123   True        False     fetch failed: 500 upstream said: broken\n" +
			"team-b        new                            False       Unknown   waiting to be reconciled\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var b bytes.Buffer
			g.Expect(writeSourceTable(&b, items, tt.withNamespace)).To(Succeed())
			g.Expect(b.String()).To(Equal(tt.want))
		})
	}
}

func TestRequestOutcome(t *testing.T) {
	const token = "2026-11-29T22:00:00.1Z"
	handled := func(obj exsv1beta1.ExternalSource, at string) *exsv1beta1.ExternalSource {
		obj.Status.LastHandledReconcileAt = at
		return &obj
	}
	tests := []struct {
		name string
		obj  *exsv1beta1.ExternalSource
		want outcome
	}{
		{name: "not handled yet, even if Ready",
			obj: handled(source("n", "s", false, "r", readyCond(metav1.ConditionTrue, 2, "ok")), "older")},
		{name: "handled and Ready",
			obj:  handled(source("n", "s", false, "r", readyCond(metav1.ConditionTrue, 2, "ok")), token),
			want: outcome{done: true, ready: true, message: "ok"}},
		{name: "handled and failed",
			obj:  handled(source("n", "s", false, "r", readyCond(metav1.ConditionFalse, 2, "fetch failed: 500")), token),
			want: outcome{done: true, message: "fetch failed: 500"}},
		{name: "Ready of an older generation (resume before the controller saw it)",
			obj: handled(source("n", "s", false, "r", readyCond(metav1.ConditionTrue, 1, "ok")), token)},
		{name: "in progress",
			obj: handled(source("n", "s", false, "r", readyCond(metav1.ConditionUnknown, 2, "processing")), token)},
		{name: "no Ready condition", obj: handled(source("n", "s", false, "", nil), token)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(requestOutcome(tt.obj, token)).To(Equal(tt.want))
		})
	}
}

func TestRequestPatch(t *testing.T) {
	tests := []struct {
		name  string
		force bool
		base  map[string]any
		want  map[string]any
	}{
		{name: "reconcile", want: map[string]any{"metadata": map[string]any{"annotations": map[string]any{
			meta.ReconcileRequestAnnotation: "t"}}}},
		{name: "reconcile --force sets forceAt to the same value", force: true,
			want: map[string]any{"metadata": map[string]any{"annotations": map[string]any{
				meta.ReconcileRequestAnnotation: "t", meta.ForceRequestAnnotation: "t"}}}},
		{name: "resume", base: map[string]any{"spec": map[string]any{"suspend": false}},
			want: map[string]any{"spec": map[string]any{"suspend": false},
				"metadata": map[string]any{"annotations": map[string]any{meta.ReconcileRequestAnnotation: "t"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(requestPatch("t", tt.force, tt.base)).To(Equal(tt.want))
		})
	}
}

func TestSourceEvents(t *testing.T) {
	base := time.Date(2026, 11, 29, 22, 0, 0, 0, time.UTC)
	ev := func(name, apiVersion, kind, typ, reason, msg string, set func(*corev1.Event)) corev1.Event {
		e := corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: "flux-system", Name: name},
			InvolvedObject: corev1.ObjectReference{APIVersion: apiVersion, Kind: kind, Name: "pricing",
				Namespace: "flux-system"},
			Type: typ, Reason: reason, Message: msg,
		}
		set(&e)
		return e
	}
	at := func(d time.Duration) func(*corev1.Event) {
		return func(e *corev1.Event) { e.EventTime = metav1.NewMicroTime(base.Add(d)) }
	}
	items := []corev1.Event{
		// A repeated failure: its series' last observation sorts it.
		ev("a", "source.externalsource.io/v1beta1", "ExternalSource", "Warning", "FetchFailed", "fetch failed", func(e *corev1.Event) {
			e.EventTime = metav1.NewMicroTime(base.Add(time.Second))
			e.Series = &corev1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(base.Add(30 * time.Second))}
		}),
		ev("b", "source.externalsource.io/v1beta1", "ExternalSource", "Normal", "NewArtifact", "rev 1", at(0)),
		// A core/v1 recorder's event: lastTimestamp.
		ev("c", "source.toolkit.fluxcd.io/v1", "ExternalArtifact", "Normal", "NewArtifact", "rev 1", func(e *corev1.Event) {
			e.LastTimestamp = metav1.NewTime(base.Add(2 * time.Second))
		}),
		// Same kind name, another group: not ours.
		ev("d", "example.com/v1", "ExternalSource", "Normal", "Other", "not ours", at(3*time.Second)),
		ev("e", "v1", "Pod", "Normal", "Pulled", "not ours", at(4*time.Second)),
		ev("f", "source.externalsource.io/v1beta1", "ExternalSource", "Normal", "NewArtifact", "rev 2", at(time.Minute)),
	}
	evs := sourceEvents(items)
	g := NewWithT(t)
	var names []string
	for _, e := range evs {
		names = append(names, e.Name)
	}
	g.Expect(names).To(Equal([]string{"b", "c", "a", "f"}))

	var b bytes.Buffer
	g.Expect(writeEventTable(&b, evs, true, base.Add(2*time.Minute))).To(Succeed())
	g.Expect(b.String()).To(Equal("" +
		"NAMESPACE     LAST SEEN   TYPE      REASON        OBJECT                     MESSAGE\n" +
		"flux-system   2m          Normal    NewArtifact   ExternalSource/pricing     rev 1\n" +
		"flux-system   118s        Normal    NewArtifact   ExternalArtifact/pricing   rev 1\n" +
		"flux-system   90s         Warning   FetchFailed   ExternalSource/pricing     fetch failed\n" +
		"flux-system   60s         Normal    NewArtifact   ExternalSource/pricing     rev 2\n"))
}

func TestWriteExport(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 11, 29, 22, 0, 0, 0, time.UTC))
	obj := exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{
			Name: "pricing", Namespace: "flux-system", UID: "1234", ResourceVersion: "42", Generation: 3,
			CreationTimestamp: created, Finalizers: []string{exsv1beta1.Finalizer},
			Labels: map[string]string{"team": "pricing"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": "{}",
				meta.ReconcileRequestAnnotation:                    "now",
				meta.ForceRequestAnnotation:                        "now",
				"example.com/owner":                                "pricing",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			DestinationPath: "data/pricing.json",
			Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP,
				HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: "https://api.example.com/v1/pricing"}},
		},
	}
	obj.Status.Artifact = &meta.Artifact{Revision: "latest@sha256:abc"}
	bare := obj.DeepCopy()
	bare.Name, bare.Labels, bare.Annotations = "bare", nil, map[string]string{meta.ReconcileRequestAnnotation: "now"}

	g := NewWithT(t)
	var b bytes.Buffer
	g.Expect(writeExport(&b, []exsv1beta1.ExternalSource{obj, *bare})).To(Succeed())
	g.Expect(b.String()).To(Equal(`---
apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata:
  annotations:
    example.com/owner: pricing
  labels:
    team: pricing
  name: pricing
  namespace: flux-system
spec:
  destinationPath: data/pricing.json
  generator:
    http:
      url: https://api.example.com/v1/pricing
    type: http
  interval: 10m0s
---
apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata:
  name: bare
  namespace: flux-system
spec:
  destinationPath: data/pricing.json
  generator:
    http:
      url: https://api.example.com/v1/pricing
    type: http
  interval: 10m0s
`))
}

// TestMain keeps a developer's KUBECONFIG out of the tests.
func TestMain(m *testing.M) {
	_ = os.Setenv("KUBECONFIG", filepath.Join(os.TempDir(), "externalsource-cli-test-no-kubeconfig"))
	os.Exit(m.Run())
}
