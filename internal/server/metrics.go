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

package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// RequestsName is the artifact server's request counter.
const RequestsName = "externalsource_artifact_server_requests_total"

// requests counts the artifact server's responses by status code only:
// the path names an object, and the method is whatever a client sends, so
// either would let anyone who can reach the server add series.
var requests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: RequestsName,
	Help: "Responses of the artifact server by HTTP status code; a 5xx is a storage backend the server could not read.",
}, []string{"code"})

func init() {
	metrics.Registry.MustRegister(requests)
}

// instrument counts h's responses in requests.
func instrument(h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(requests, h)
}
