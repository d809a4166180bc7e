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
	"strings"
	"testing"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// FuzzCheck: whatever a hook asks for, an accepted hook runs only the
// whitelisted binary, each argument fully matches one of its patterns, and
// no env name is one that can never be allowed.
func FuzzCheck(f *testing.F) {
	wl, err := Parse([]byte(testWhitelist))
	if err != nil {
		f.Fatal(err)
	}
	var patterns []*regexp.Regexp
	for _, p := range []string{`-[cerSn]+`, `\.[A-Za-z0-9_.\[\]|{}:", ]*`} {
		patterns = append(patterns, regexp.MustCompile(`^(?:`+p+`)$`))
	}
	f.Add("jq", "-c", ".items", "TZ")
	f.Add("jq", "--rawfile", "/etc/passwd", "LD_PRELOAD")
	f.Add("jq", "-c\n-r", ".a", "BASH_ENV")
	f.Add("/usr/bin/jq", "-c", ".", "PATH")
	f.Add("sign", "--key-id", "abc", "ld_preload")
	f.Fuzz(func(t *testing.T, command, arg0, arg1, env string) {
		h := exsv1beta1.Hook{Name: "f", Command: command, Args: []string{arg0, arg1}, Env: []exsv1beta1.HookEnvVar{{Name: env, Value: "v"}}}
		r, err := wl.Check(h)
		if err != nil {
			if !IsRejected(err) {
				t.Fatalf("a refusal that is not a RejectedError: %v", err)
			}
			return
		}
		if command != "jq" || r.Path != "/usr/bin/jq" {
			t.Fatalf("accepted command %q as %q", command, r.Path)
		}
		for _, a := range h.Args {
			ok := false
			for _, re := range patterns {
				ok = ok || re.MatchString(a)
			}
			if !ok {
				t.Fatalf("accepted argument %q", a)
			}
		}
		if forbiddenEnv(env) != "" || strings.ToUpper(env) != "TZ" {
			t.Fatalf("accepted env %q", env)
		}
	})
}
