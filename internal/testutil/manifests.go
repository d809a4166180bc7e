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

package testutil

import (
	"os"
	"path/filepath"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// ShippedDeployment is config/manager/deployment.yaml as users apply it,
// for the tests that check the code's defaults and caps against it.
func ShippedDeployment(g Gomega) *appsv1.Deployment {
	b, err := os.ReadFile(filepath.Join(devenv.Root(), "config", "manager", "deployment.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var d appsv1.Deployment
	g.Expect(yaml.UnmarshalStrict(b, &d)).To(Succeed())
	return &d
}

// ShippedContainer is the container of the shipped Deployment named name.
func ShippedContainer(g Gomega, name string) *corev1.Container {
	d := ShippedDeployment(g)
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	g.Expect(name).To(BeEmpty(), "the shipped Deployment has no container %q", name)
	return nil
}
