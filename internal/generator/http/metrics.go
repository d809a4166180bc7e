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

package http

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// TokenRequestsName is the counter of OAuth2 token requests.
const TokenRequestsName = "externalsource_auth_token_requests_total"

// Results of a token request.
const (
	tokenResultSuccess = "success"
	tokenResultError   = "error"
)

// tokenRequests counts the requests sent to OAuth2 token endpoints (a
// cached token costs none), so that an operator sees whether tokens are
// reused and whether an identity provider fails. The only label is the
// result: no per-object or per-endpoint series.
var tokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: TokenRequestsName,
	Help: "OAuth2 token requests of spec.generator.http.auth.oauth2, by result (success, error).",
}, []string{"result"})

func init() {
	ctrlmetrics.Registry.MustRegister(tokenRequests)
}
