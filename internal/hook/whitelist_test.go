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
	"regexp"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
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

// defaultPolicy is the sandbox of an entry without sandbox fields.
var defaultPolicy = SandboxPolicy{ReadPaths: []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache"},
	Memory: 512 << 20, CPU: 30 * time.Second, FileSize: 64 << 20, Processes: 32, OpenFiles: 64}

func TestCheck(t *testing.T) {
	wl, err := Parse([]byte(testWhitelist))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		hook   exsv1beta1.Hook
		reject string
		want   *Resolved
	}{
		{name: "allowed", hook: exsv1beta1.Hook{Name: "h", Command: "jq", Args: []string{"-c", ".items"}, Env: []exsv1beta1.HookEnvVar{{Name: "TZ", Value: "UTC"}}},
			want: &Resolved{Hook: "h", Path: "/usr/bin/jq", Args: []string{"-c", ".items"}, Env: []string{"TZ=UTC"}, Timeout: DefaultTimeout, Sandbox: defaultPolicy}},
		{name: "not on the whitelist", hook: exsv1beta1.Hook{Name: "h", Command: "curl"}, reject: `command "curl" is not on the whitelist`},
		{name: "path trick", hook: exsv1beta1.Hook{Name: "h", Command: "/tmp/x/jq"}, reject: `command "/tmp/x/jq" is not on the whitelist`},
		{name: "absolute path of an allowed binary", hook: exsv1beta1.Hook{Name: "h", Command: "/usr/bin/jq"}, reject: `command "/usr/bin/jq" is not on the whitelist`},
		{name: "rawfile refused", hook: exsv1beta1.Hook{Name: "h", Command: "jq", Args: []string{"--rawfile", "x", "/etc/passwd"}},
			reject: `argument 0 ("--rawfile") matches none of the patterns allowed for command "jq"`},
		{name: "anchored: suffix", hook: exsv1beta1.Hook{Name: "h", Command: "jq", Args: []string{"-c; rm"}}, reject: `argument 0`},
		{name: "anchored: prefix", hook: exsv1beta1.Hook{Name: "h", Command: "sign", Args: []string{"x--key-id"}}, reject: `argument 0`},
		{name: "BASH_ENV", hook: exsv1beta1.Hook{Name: "h", Command: "jq", Env: []exsv1beta1.HookEnvVar{{Name: "BASH_ENV", Value: "/x"}}}, reject: `env "BASH_ENV" is never allowed`},
		{name: "LD_PRELOAD", hook: exsv1beta1.Hook{Name: "h", Command: "jq", Env: []exsv1beta1.HookEnvVar{{Name: "LD_PRELOAD", Value: "/x.so"}}}, reject: `env "LD_PRELOAD" is never allowed (LD_*)`},
		{name: "PATH", hook: exsv1beta1.Hook{Name: "h", Command: "jq", Env: []exsv1beta1.HookEnvVar{{Name: "PATH", Value: "/tmp"}}}, reject: `env "PATH" is never allowed`},
		{name: "env not listed", hook: exsv1beta1.Hook{Name: "h", Command: "sign", Env: []exsv1beta1.HookEnvVar{{Name: "TZ"}}}, reject: `env "TZ" is not allowed for command "sign"`},
		{name: "timeout capped", hook: exsv1beta1.Hook{Name: "h", Command: "jq", Timeout: &metav1.Duration{Duration: time.Hour}},
			want: &Resolved{Hook: "h", Path: "/usr/bin/jq", Args: nil, Env: []string{}, Timeout: 30 * time.Second, Sandbox: defaultPolicy}},
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

// TestParseSandboxFields: readPaths, network and limits are validated when
// the file is read, with a message that names the entry and the field.
func TestParseSandboxFields(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string // the error; "" parses
	}{
		{name: "pattern that escapes its anchoring", data: `commands: [{name: jq, path: /usr/bin/jq, args: ['-r)|(\.[a-z]+']}]`,
			want: "args[0]: error parsing regexp: unexpected )"},
		{name: "pattern that opens a group it does not close", data: `commands: [{name: jq, path: /usr/bin/jq, args: ['(-c']}]`,
			want: "args[0]: error parsing regexp: missing closing )"},
		{name: "relative read path", data: "commands: [{name: jq, path: /usr/bin/jq, readPaths: [usr/lib]}]",
			want: `readPaths[0]: "usr/lib" must be a clean absolute path`},
		{name: "unclean read path", data: "commands: [{name: jq, path: /usr/bin/jq, readPaths: [/usr/lib, /usr/../etc]}]",
			want: `readPaths[1]: "/usr/../etc" must be a clean absolute path`},
		{name: "the root as read path", data: "commands: [{name: jq, path: /usr/bin/jq, readPaths: [/]}]",
			want: "readPaths[0]: / would grant the whole filesystem"},
		{name: "memory not a quantity", data: "commands: [{name: jq, path: /usr/bin/jq, limits: {memory: lots}}]",
			want: "quantities must match"},
		{name: "zero memory", data: "commands: [{name: jq, path: /usr/bin/jq, limits: {memory: 0}}]",
			want: "limits.memory must be positive"},
		{name: "negative file size", data: "commands: [{name: jq, path: /usr/bin/jq, limits: {fileSize: -1Mi}}]",
			want: "limits.fileSize must be positive"},
		{name: "cpu under a second", data: "commands: [{name: jq, path: /usr/bin/jq, limits: {cpu: 500ms}}]",
			want: "limits.cpu must be at least 1s"},
		{name: "zero processes", data: "commands: [{name: jq, path: /usr/bin/jq, limits: {processes: 0}}]",
			want: "limits.processes must be positive"},
		{name: "negative open files", data: "commands: [{name: jq, path: /usr/bin/jq, limits: {openFiles: -3}}]",
			want: "limits.openFiles must be positive"},
		{name: "unknown limit", data: "commands: [{name: jq, path: /usr/bin/jq, limits: {swap: 1Gi}}]",
			want: `unknown field "swap"`},
		{name: "all fields", data: "commands: [{name: jq, path: /usr/bin/jq, readPaths: [/usr/lib, /etc/ld.so.cache], network: true, " +
			"limits: {memory: 256Mi, cpu: 10s, fileSize: 1M, processes: 4, openFiles: 16}}]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			wl, err := Parse([]byte(tt.data))
			if tt.want != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
				g.Expect(err).To(MatchError(ContainSubstring("whitelist: ")))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			res, err := wl.Check(exsv1beta1.Hook{Name: "h", Command: "jq"})
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.Sandbox).To(Equal(SandboxPolicy{ReadPaths: []string{"/usr/lib", "/etc/ld.so.cache"}, Network: true,
				Memory: 256 << 20, CPU: 10 * time.Second, FileSize: 1000000, Processes: 4, OpenFiles: 16}))
		})
	}
}

// TestEscapingPatternNoLongerMatches: the pattern of the issue, had it
// been accepted, would have let --rawfile through.
func TestEscapingPatternNoLongerMatches(t *testing.T) {
	g := NewWithT(t)
	wrapped := regexp.MustCompile(`^(?:` + `-r)|(\.[a-z]+` + `)$`)
	g.Expect(wrapped.MatchString("-rawfile")).To(BeTrue(), "the wrapping alone does not hold")
	_, err := Parse([]byte(`commands: [{name: jq, path: /usr/bin/jq, args: ['-r)|(\.[a-z]+']}]`))
	g.Expect(err).To(HaveOccurred())
}
