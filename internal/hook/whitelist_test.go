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

package hook

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

const testWhitelist = `
commands:
  - name: jq
    path: /usr/bin/jq
    args:
      - '-[cerSn]+'
      - '\.[A-Za-z0-9_.\[\]|{}:", ]*'
    env: [TZ]
    maxTimeout: 30s
  - name: sign
    path: /usr/local/bin/sign-request
    args: ['--key-id', '[a-z0-9]+']
`

func TestCheck(t *testing.T) {
	wl, err := Parse([]byte(testWhitelist))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		hook   v1.Hook
		reject string
		want   *Resolved
	}{
		{name: "allowed", hook: v1.Hook{Name: "h", Command: "jq", Args: []string{"-c", ".items"}, Env: []v1.HookEnvVar{{Name: "TZ", Value: "UTC"}}},
			want: &Resolved{Hook: "h", Path: "/usr/bin/jq", Args: []string{"-c", ".items"}, Env: []string{"TZ=UTC"}, Timeout: DefaultTimeout}},
		{name: "not on the whitelist", hook: v1.Hook{Name: "h", Command: "curl"}, reject: `command "curl" is not on the whitelist`},
		{name: "path trick", hook: v1.Hook{Name: "h", Command: "/tmp/x/jq"}, reject: `command "/tmp/x/jq" is not on the whitelist`},
		{name: "absolute path of an allowed binary", hook: v1.Hook{Name: "h", Command: "/usr/bin/jq"}, reject: `command "/usr/bin/jq" is not on the whitelist`},
		{name: "rawfile refused", hook: v1.Hook{Name: "h", Command: "jq", Args: []string{"--rawfile", "x", "/etc/passwd"}},
			reject: `argument 0 ("--rawfile") matches none of the patterns allowed for command "jq"`},
		{name: "anchored: suffix", hook: v1.Hook{Name: "h", Command: "jq", Args: []string{"-c; rm"}}, reject: `argument 0`},
		{name: "anchored: prefix", hook: v1.Hook{Name: "h", Command: "sign", Args: []string{"x--key-id"}}, reject: `argument 0`},
		{name: "BASH_ENV", hook: v1.Hook{Name: "h", Command: "jq", Env: []v1.HookEnvVar{{Name: "BASH_ENV", Value: "/x"}}}, reject: `env "BASH_ENV" is never allowed`},
		{name: "LD_PRELOAD", hook: v1.Hook{Name: "h", Command: "jq", Env: []v1.HookEnvVar{{Name: "LD_PRELOAD", Value: "/x.so"}}}, reject: `env "LD_PRELOAD" is never allowed (LD_*)`},
		{name: "PATH", hook: v1.Hook{Name: "h", Command: "jq", Env: []v1.HookEnvVar{{Name: "PATH", Value: "/tmp"}}}, reject: `env "PATH" is never allowed`},
		{name: "env not listed", hook: v1.Hook{Name: "h", Command: "sign", Env: []v1.HookEnvVar{{Name: "TZ"}}}, reject: `env "TZ" is not allowed for command "sign"`},
		{name: "timeout capped", hook: v1.Hook{Name: "h", Command: "jq", Timeout: &metav1.Duration{Duration: time.Hour}},
			want: &Resolved{Hook: "h", Path: "/usr/bin/jq", Args: nil, Env: []string{}, Timeout: 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := wl.Check(tt.hook)
			if tt.reject != "" {
				g.Expect(IsRejected(err)).To(BeTrue(), "got %v", err)
				g.Expect(err.Error()).To(ContainSubstring(`hook "h" rejected by the whitelist`))
				g.Expect(err.Error()).To(ContainSubstring(tt.reject))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

func TestParseRejectsBadWhitelists(t *testing.T) {
	tests := map[string]string{
		"relative path":  "commands: [{name: jq, path: jq}]",
		"unclean path":   "commands: [{name: jq, path: /usr/../usr/bin/jq}]",
		"no name":        "commands: [{path: /usr/bin/jq}]",
		"duplicate":      "commands: [{name: jq, path: /usr/bin/jq}, {name: jq, path: /bin/jq}]",
		"bad regexp":     "commands: [{name: jq, path: /usr/bin/jq, args: ['(']}]",
		"forbidden env":  "commands: [{name: jq, path: /usr/bin/jq, env: [LD_PRELOAD]}]",
		"bad env name":   "commands: [{name: jq, path: /usr/bin/jq, env: ['A=B']}]",
		"unknown field":  "commands: [{name: jq, path: /usr/bin/jq, shell: true}]",
		"not yaml":       "commands: {",
		"empty":          " \n",
		"negative limit": "commands: [{name: jq, path: /usr/bin/jq, maxTimeout: -1s}]",
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Parse([]byte(data))
			g.Expect(err).To(MatchError(ContainSubstring("whitelist")))
		})
	}
}
