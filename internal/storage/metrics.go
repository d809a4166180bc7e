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

package storage

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// backendInfo exposes the backend in use, so that a dashboard or an alert
// can see that artifacts would not survive a restart (ephemeral="true").
var backendInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "externalsource_storage_backend_info",
	Help: "The artifact storage backend in use (value 1); ephemeral=\"true\" means artifacts do not survive a controller restart.",
}, []string{"backend", "ephemeral"})

func init() {
	metrics.Registry.MustRegister(backendInfo)
}

// RecordBackend sets the backend info metric.
func RecordBackend(name string, s Storage) {
	backendInfo.Reset()
	backendInfo.WithLabelValues(name, strconv.FormatBool(s.Ephemeral())).Set(1)
}
