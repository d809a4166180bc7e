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

package redact

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
)

func TestSetString(t *testing.T) {
	const secret = `s3cr3t"value/with?odd&chars`
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{name: "plain", msg: "header was " + secret, want: "header was ***"},
		{name: "go quoted", msg: fmt.Sprintf("got %q", secret), want: `got "***"`},
		{name: "url escaped", msg: "q=" + url.QueryEscape(secret), want: "q=***"},
		{name: "base64", msg: "Basic " + base64.StdEncoding.EncodeToString([]byte(secret)), want: "Basic ***"},
		{name: "twice", msg: secret + secret, want: "******"},
		{name: "nothing to redact", msg: "all fine", want: "all fine"},
		{name: "url query and userinfo", msg: `Get "https://user:pw@api.example.com/v1?api_key=abc&x=1": refused`,
			want: `Get "https://***@api.example.com/v1?api_key=***&x=***": refused`},
		{name: "url without query", msg: "GET http://api.example.com/a/b failed", want: "GET http://api.example.com/a/b failed"},
		{name: "unparsable url with userinfo", msg: "bad http://u:pw-secret@h/%zz?a=b", want: "bad http://***@h/%zz?***"},
		{name: "punctuation after a url", msg: "GET http://h/x?a=b): y, see https://h/y?t=1.", want: "GET http://h/x?a=***): y, see https://h/y?t=***."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var s Set
			s.Add(secret, "", "on") // empty and short values are ignored
			g.Expect(s.String(tt.msg)).To(Equal(tt.want))
		})
	}
}

func TestSetAddURL(t *testing.T) {
	g := NewWithT(t)
	var s Set
	u, err := url.Parse("https://bobby:pa55word@h/p?api_key=k3y-value&x=1")
	g.Expect(err).ToNot(HaveOccurred())
	s.AddURL(u)
	g.Expect(s.String("echo /p?api_key=k3y-value as bobby:pa55word")).To(Equal("echo /p?api_key=*** as ***:***"))
}

func TestSetLongestFirst(t *testing.T) {
	g := NewWithT(t)
	var s Set
	s.Add("abcd", "abcdefgh")
	g.Expect(s.String("x abcdefgh y abcd")).To(Equal("x *** y ***"))
}

func TestNilSetRedactsURLs(t *testing.T) {
	g := NewWithT(t)
	var s *Set
	s.Add("ignored")
	g.Expect(s.String("https://h/p?token=abc")).To(Equal("https://h/p?token=***"))
	g.Expect(FromContext(context.Background())).To(BeNil())
}

func TestSetError(t *testing.T) {
	g := NewWithT(t)
	s := &Set{}
	s.AddBytes(map[string][]byte{"k": []byte("topsecret")})
	base := errors.New("boom")
	err := s.Error(fmt.Errorf("sent topsecret: %w", base))
	g.Expect(err.Error()).To(Equal("sent ***: boom"))
	g.Expect(errors.Is(err, base)).To(BeTrue())
	g.Expect(IsRedacted(err)).To(BeTrue())
	g.Expect(s.Error(nil)).To(BeNil())
	g.Expect(s.Error(base)).To(BeIdenticalTo(base))

	ctx := NewContext(context.Background(), s)
	g.Expect(FromContext(ctx)).To(BeIdenticalTo(s))
}

// FuzzSetString: whatever surrounds a recorded value, the output never
// contains it.
func FuzzSetString(f *testing.F) {
	f.Add("Bearer abc.def", "error: ", " at line 1")
	f.Add("p@ss:word", "https://u:", "@h/?q=1")
	f.Fuzz(func(t *testing.T, secret, before, after string) {
		if len(secret) < MinLength || strings.Contains(Placeholder, secret) {
			return
		}
		var s Set
		s.Add(secret)
		out := s.String(before + secret + after)
		// The value may reappear only where the surrounding text itself
		// holds it (e.g. before ends with a prefix of it): check the
		// segment that replaced it.
		if strings.Contains(out, secret) && !strings.Contains(before+Placeholder+after, secret) &&
			!strings.Contains(URLsIn(before+Placeholder+after), secret) {
			t.Fatalf("%q leaked in %q", secret, out)
		}
	})
}

func TestLogger(t *testing.T) {
	g := NewWithT(t)
	var lines []string
	base := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) },
		funcr.Options{Verbosity: 1})
	s := &Set{}
	s.Add("hunter22")
	l := Logger(base, s).WithValues("header", "Bearer hunter22").WithName("x")
	l.Info("sent hunter22", "url", "https://h/?k=hunter22&a=b", "n", 3)
	l.V(1).Info("debug", "values", []string{"hunter22"})
	l.Error(errors.New("refused hunter22"), "failed")
	g.Expect(lines).To(HaveLen(3))
	for _, line := range lines {
		g.Expect(line).NotTo(ContainSubstring("hunter22"))
		g.Expect(line).To(ContainSubstring("***"))
	}
	g.Expect(lines[0]).To(ContainSubstring(`"n"=3`))
}
