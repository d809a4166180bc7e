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
	"testing"

	. "github.com/onsi/gomega"
	flag "github.com/spf13/pflag"
)

// TestMaxConcurrentPerHostFlag: --max-concurrent-per-host defaults to half
// of --concurrent (at least 1), takes a positive value as is, and a
// negative one turns the limit off.
func TestMaxConcurrentPerHostFlag(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{args: nil, want: 5},
		{args: []string{"--concurrent=40"}, want: 20},
		{args: []string{"--concurrent=1"}, want: 1},
		{args: []string{"--max-concurrent-per-host=4"}, want: 4},
		{args: []string{"--max-concurrent-per-host=-1"}, want: 0},
	}
	for _, tt := range tests {
		g := NewWithT(t)
		var f flags
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f.bind(fs)
		g.Expect(fs.Parse(tt.args)).To(Succeed())
		g.Expect(f.perHostLimit()).To(Equal(tt.want), "%v", tt.args)
	}
	var f flags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f.bind(fs)
	NewWithT(t).Expect(fs.Lookup("max-concurrent-per-host").Usage).To(ContainSubstring("half of --concurrent"))
}
