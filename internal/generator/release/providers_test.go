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

package release

import (
	"testing"

	. "github.com/onsi/gomega"
)

// TestParseReleases: GitHub and Gitea list releases in one shape but take
// an asset's download address from different fields, and only GitHub
// gives a digest. (The Gitea rows are fixed JSON in Gitea's documented
// shape until the real-server tests come.)
func TestParseReleases(t *testing.T) {
	const list = `[{"tag_name":"v1.2.0","draft":false,"prerelease":true,"html_url":"https://h/r/v1.2.0",
		"published_at":"2026-12-01T10:00:00Z",
		"assets":[{"name":"install.yaml","url":"https://api/assets/1","browser_download_url":"https://h/dl/install.yaml","digest":"sha256:ab"}]}]`
	tests := []struct {
		name string
		p    interface {
			parse([]byte) ([]release, error)
		}
		want asset
	}{
		{name: "github: the API asset URL and its digest", p: &github{}, want: asset{Name: "install.yaml", DownloadURL: "https://api/assets/1", Digest: "sha256:ab"}},
		{name: "gitea: the browser download URL, no digest", p: &gitea{}, want: asset{Name: "install.yaml", DownloadURL: "https://h/dl/install.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rs, err := tt.p.parse([]byte(list))
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(rs).To(HaveLen(1))
			g.Expect(rs[0].Tag).To(Equal("v1.2.0"))
			g.Expect(rs[0].Prerelease).To(BeTrue())
			g.Expect(rs[0].URL).To(Equal("https://h/r/v1.2.0"))
			g.Expect(rs[0].PublishedAt.IsZero()).To(BeFalse())
			g.Expect(rs[0].Assets).To(Equal([]asset{tt.want}))
		})
	}
	_, err := (&gitea{}).parse([]byte(`{"not":"a list"}`))
	NewWithT(t).Expect(err).To(HaveOccurred())
}
