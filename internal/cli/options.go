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
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// scheme holds the types the CLI reads: ExternalSources and Events.
var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))
}

// options are the global flags, kubectl's names and meanings, and where
// the commands write.
type options struct {
	kubeconfig  string
	kubecontext string
	namespace   string
	timeout     time.Duration

	stdout, stderr io.Writer
	// started says a command's RunE was reached: an error before it is a
	// usage error.
	started bool
}

func (o *options) bind(fs *pflag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "",
		"Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, as kubectl).")
	fs.StringVar(&o.kubecontext, "context", "", "The kubeconfig context to use (default: its current-context).")
	fs.StringVarP(&o.namespace, "namespace", "n", "",
		"The namespace of the ExternalSources (default: the namespace of the kubeconfig context, else \"default\").")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout,
		"How long a command may take, waiting for a reconciliation included.")
}

// clientConfig is kubectl's: the standard loading rules ($KUBECONFIG, a
// list of files merged, then ~/.kube/config; in a pod the in-cluster
// configuration), with --kubeconfig, --context and -n as overrides.
func (o *options) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.kubecontext}
	overrides.Context.Namespace = o.namespace
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// resolveNamespace returns -n, else the namespace of the kubeconfig
// context, else "default".
func (o *options) resolveNamespace() (string, error) {
	ns, _, err := o.clientConfig().Namespace()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	return ns, nil
}

// session is what a command needs to talk to the cluster.
type session struct {
	client    client.WithWatch
	namespace string
}

// connect reads the kubeconfig and builds a client; no request is sent.
func (o *options) connect() (*session, error) {
	cc := o.clientConfig()
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = PluginName
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &session{client: c, namespace: ns}, nil
}

// context returns the context of one command, bounded by --timeout.
func (o *options) context() (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), o.timeout)
}

// Progress lines go to stderr with flux's marks, so that stdout carries
// only what a script parses (tables, YAML).

func (o *options) action(format string, args ...any) {
	fmt.Fprintf(o.stderr, "► "+format+"\n", args...)
}

func (o *options) waiting(format string, args ...any) {
	fmt.Fprintf(o.stderr, "◎ "+format+"\n", args...)
}

func (o *options) success(format string, args ...any) {
	fmt.Fprintf(o.stderr, "✔ "+format+"\n", args...)
}

func (o *options) failure(format string, args ...any) {
	fmt.Fprintf(o.stderr, "✗ "+format+"\n", args...)
}
