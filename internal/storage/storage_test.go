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

package storage_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

func TestRecordBackend(t *testing.T) {
	g := NewWithT(t)
	storage.RecordBackend("memory", memory.New(memory.Options{}))
	mfs, err := metrics.Registry.Gather()
	g.Expect(err).ToNot(HaveOccurred())
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "externalsource_storage_backend_info" {
			continue
		}
		g.Expect(mf.GetMetric()).To(HaveLen(1))
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		g.Expect(labels).To(Equal(map[string]string{"backend": "memory", "ephemeral": "true"}))
		g.Expect(mf.GetMetric()[0].GetGauge().GetValue()).To(Equal(1.0))
		found = true
	}
	g.Expect(found).To(BeTrue())
}

func TestArtifactPathsAndURLs(t *testing.T) {
	g := NewWithT(t)
	obj := &metav1.ObjectMeta{Name: "pricing", Namespace: "flux-system"}
	a := storage.NewArtifact("http://svc.ns.svc.cluster.local.", "ExternalSource", obj, "latest@sha256:ab", "ab.tar.gz")
	g.Expect(a.Path).To(Equal("externalsource/flux-system/pricing/ab.tar.gz"))
	g.Expect(a.URL).To(Equal("http://svc.ns.svc.cluster.local./externalsource/flux-system/pricing/ab.tar.gz"))
	g.Expect(storage.BaseURL("host:9090")).To(Equal("http://host:9090"))
	g.Expect(storage.BaseURL("https://host/")).To(Equal("https://host"))
}

func TestGarbageFiles(t *testing.T) {
	now := time.Unix(1000, 0)
	objs := []storage.ObjectInfo{
		{Path: "d/a", ModTime: now.Add(-50 * time.Second)},
		{Path: "d/b", ModTime: now.Add(-40 * time.Second)},
		{Path: "d/c", ModTime: now.Add(-30 * time.Second)},
		{Path: "d/cur", ModTime: now.Add(-100 * time.Second)},
	}
	tests := []struct {
		name   string
		policy storage.Retention
		want   []string
	}{
		{"records keep the newest", storage.Retention{TTL: time.Hour, Records: 2}, []string{"d/b", "d/a"}},
		{"ttl expires the old", storage.Retention{TTL: 35 * time.Second, Records: 10}, []string{"d/b", "d/a"}},
		{"both", storage.Retention{TTL: 45 * time.Second, Records: 3}, []string{"d/a"}},
		{"records 1 keeps only current", storage.Retention{TTL: time.Hour, Records: 1}, []string{"d/c", "d/b", "d/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(storage.GarbageFiles(objs, "d/cur", tt.policy, now)).To(Equal(tt.want))
		})
	}
}
