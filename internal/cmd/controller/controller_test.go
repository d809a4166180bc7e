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

package controller

import (
	"cmp"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	flag "github.com/spf13/pflag"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	artifactcfg "github.com/fluxcd/pkg/artifact/config"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
)

// TestGeneratorTypesMatchTheCRD holds three lists together: the enum the
// API server enforces, v1beta1.GeneratorTypes, and the registered
// implementations. A type the API admits without an implementation fails
// start-up; this test fails first.
func TestGeneratorTypesMatchTheCRD(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "source.externalsource.io_externalsources.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(yaml.Unmarshal(b, &crd)).To(Succeed())
	typ := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["generator"].Properties["type"]
	var enum []string
	for _, e := range typ.Enum {
		var s string
		g.Expect(yaml.Unmarshal(e.Raw, &s)).To(Succeed())
		enum = append(enum, s)
	}
	g.Expect(enum).To(ConsistOf(exsv1beta1.GeneratorTypes))

	r := generator.NewRegistry()
	g.Expect(builtin.Register(r, builtin.Options{})).To(Succeed())
	g.Expect(r.CheckImplements(enum)).To(Succeed())
	g.Expect(r.CheckImplements(append(enum, "ftp"))).To(MatchError(ContainSubstring("[ftp]")))
}

// TestStartupFailsForATypeWithoutImplementation runs the start-up step that
// builds the registry: with the CRD's types it succeeds; when the API
// accepts a type nothing implements, start-up fails naming it.
func TestStartupFailsForATypeWithoutImplementation(t *testing.T) {
	g := NewWithT(t)
	r, err := newGenerators(exsv1beta1.GeneratorTypes, builtin.Register, builtin.Options{})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(r.Types()).To(ConsistOf(exsv1beta1.GeneratorTypes))

	_, err = newGenerators(append(slices.Clone(exsv1beta1.GeneratorTypes), "ftp"), builtin.Register, builtin.Options{})
	g.Expect(err).To(MatchError(ContainSubstring("have no implementation: [ftp]")))

	none := func(*generator.Registry, builtin.Options) error { return nil }
	_, err = newGenerators(exsv1beta1.GeneratorTypes, none, builtin.Options{})
	g.Expect(err).To(MatchError(ContainSubstring("[http release]")))
}

// TestArtifactFlags: the storage, server, retention and digest flags are
// Flux's (pkg/artifact/config), with Flux's env names and defaults, and an
// explicit host in --storage-addr is advertised as given.
func TestArtifactFlags(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    artifactcfg.Options
		wantAdv string
	}{
		{
			name: "Flux's defaults",
			want: artifactcfg.Options{StoragePath: "/data", StorageAddress: ":9090",
				ArtifactRetentionTTL: time.Minute, ArtifactRetentionRecords: 2, ArtifactDigestAlgo: "sha256"},
			wantAdv: "localhost:9090",
		},
		{
			name: "Flux's env names",
			env:  map[string]string{"STORAGE_PATH": "/srv", "STORAGE_ADDRESS": "10.1.2.3:9191", "STORAGE_ADV_ADDR": ""},
			want: artifactcfg.Options{StoragePath: "/srv", StorageAddress: "10.1.2.3:9191",
				ArtifactRetentionTTL: time.Minute, ArtifactRetentionRecords: 2, ArtifactDigestAlgo: "sha256"},
			wantAdv: "10.1.2.3:9191",
		},
		{
			name: "the old STORAGE_ADDR is not read",
			env:  map[string]string{"STORAGE_ADDR": "10.9.9.9:1"},
			want: artifactcfg.Options{StoragePath: "/data", StorageAddress: ":9090",
				ArtifactRetentionTTL: time.Minute, ArtifactRetentionRecords: 2, ArtifactDigestAlgo: "sha256"},
			wantAdv: "localhost:9090",
		},
		{
			name: "STORAGE_ADV_ADDR is advertised as given",
			env:  map[string]string{"STORAGE_ADV_ADDR": "artifacts.example.com:80"},
			want: artifactcfg.Options{StoragePath: "/data", StorageAddress: ":9090", StorageAdvAddress: "artifacts.example.com:80",
				ArtifactRetentionTTL: time.Minute, ArtifactRetentionRecords: 2, ArtifactDigestAlgo: "sha256"},
			wantAdv: "artifacts.example.com:80",
		},
		{
			name: "flags",
			args: []string{"--storage-addr=0.0.0.0:9000", "--artifact-retention-ttl=1h",
				"--artifact-retention-records=5", "--artifact-digest-algo=sha512", "--storage-path=/var/a"},
			want: artifactcfg.Options{StoragePath: "/var/a", StorageAddress: "0.0.0.0:9000",
				ArtifactRetentionTTL: time.Hour, ArtifactRetentionRecords: 5, ArtifactDigestAlgo: "sha512"},
			wantAdv: net.JoinHostPort(cmp.Or(os.Getenv("HOSTNAME"), host), "9000"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			for _, k := range []string{"STORAGE_PATH", "STORAGE_ADDRESS", "STORAGE_ADV_ADDR", "STORAGE_ADDR"} {
				t.Setenv(k, tt.env[k])
			}
			var f flags
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			f.bind(fs)
			g.Expect(fs.Parse(tt.args)).To(Succeed())
			g.Expect(f.artifactOptions).To(Equal(tt.want))
			adv, err := f.artifactOptions.GetAdvertisedAddress()
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(adv).To(Equal(tt.wantAdv))
		})
	}
}

// TestFlagsHelp: the help lists Flux's artifact flags, our own storage
// flags, and says that --no-cross-namespace-refs changes nothing.
func TestFlagsHelp(t *testing.T) {
	g := NewWithT(t)
	var f flags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f.bind(fs)
	for _, name := range []string{"storage-path", "storage-addr", "storage-adv-addr", "artifact-retention-ttl",
		"artifact-retention-records", "artifact-digest-algo", "storage-backend", "s3-bucket", "memory-store-max-bytes",
		"watch-configs-label-selector", "feature-gates"} {
		g.Expect(fs.Lookup(name)).ToNot(BeNil(), name)
	}
	g.Expect(fs.Lookup("no-cross-namespace-refs").Usage).To(ContainSubstring("has no effect"))
	g.Expect(fs.Lookup("watch-configs-label-selector").DefValue).To(Equal("reconcile.fluxcd.io/watch=Enabled"))
}

// TestWatchConfigsSelector: Flux's default selects the labelled Secrets,
// an empty selector every Secret, and the DisableConfigWatchers gate (the
// only gate --feature-gates accepts) turns the watch off.
func TestWatchConfigsSelector(t *testing.T) {
	labelled := labels.Set{"reconcile.fluxcd.io/watch": "Enabled"}
	tests := []struct {
		name          string
		args          []string
		wantDisabled  bool
		wantErr       string
		matchLabelled bool
		matchOther    bool
	}{
		{name: "default", matchLabelled: true},
		{name: "empty selects every Secret", args: []string{"--watch-configs-label-selector="},
			matchLabelled: true, matchOther: true},
		{name: "custom", args: []string{"--watch-configs-label-selector=team=a"}},
		{name: "gate off", args: []string{"--feature-gates=DisableConfigWatchers=true"}, wantDisabled: true},
		{name: "bad selector", args: []string{"--watch-configs-label-selector=a in (b"}, wantErr: "--watch-configs-label-selector"},
		{name: "unknown gate", args: []string{"--feature-gates=CacheSecretsAndConfigMaps=true"}, wantErr: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var f flags
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			f.bind(fs)
			g.Expect(fs.Parse(tt.args)).To(Succeed())
			err := f.featureGates.SupportedFeatures(maps.Clone(features))
			if err == nil {
				var sel labels.Selector
				sel, err = watchConfigsSelector(f.watchOptions)
				if err == nil {
					if tt.wantDisabled {
						g.Expect(sel).To(BeNil())
						return
					}
					g.Expect(sel == nil).To(BeFalse(), "a selector means the watch is on")
					g.Expect(sel.Matches(labelled)).To(Equal(tt.matchLabelled))
					g.Expect(sel.Matches(labels.Set{"app": "x"})).To(Equal(tt.matchOther))
				}
			}
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
			} else {
				g.Expect(err).ToNot(HaveOccurred())
			}
			g.Expect(features[runtimectrl.FeatureGateDisableConfigWatchers]).To(BeFalse(), "the defaults are never changed")
		})
	}
}

// TestPrinterColumns: `kubectl get exs` shows what Flux users read first.
func TestPrinterColumns(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "source.externalsource.io_externalsources.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(yaml.Unmarshal(b, &crd)).To(Succeed())
	g.Expect(crd.Spec.Names.ShortNames).To(ContainElement("exs"))
	cols := map[string]string{}
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		cols[c.Name] = c.JSONPath
	}
	g.Expect(cols).To(Equal(map[string]string{
		"Age":      ".metadata.creationTimestamp",
		"Ready":    `.status.conditions[?(@.type=="Ready")].status`,
		"Status":   `.status.conditions[?(@.type=="Ready")].message`,
		"Revision": ".status.artifact.revision",
	}))
	g.Expect(crd.Spec.Versions[0].Subresources.Status).ToNot(BeNil())
}
