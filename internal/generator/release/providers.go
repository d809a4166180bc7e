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
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

// Public API bases of the providers.
const (
	GitHubAPI = "https://api.github.com"
	GitLabAPI = "https://gitlab.com/api/v4"
	GiteaAPI  = "https://gitea.com/api/v1"
)

// providerFor validates the spec's provider, URL and repository.
func providerFor(spec *exsv1beta1.ReleaseGeneratorSpec) (provider, error) {
	base := spec.URL
	if base == "" {
		base = map[string]string{exsv1beta1.ReleaseProviderGitHub: GitHubAPI, exsv1beta1.ReleaseProviderGitLab: GitLabAPI,
			exsv1beta1.ReleaseProviderGitea: GiteaAPI}[spec.Provider]
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, generator.InvalidSpec("spec.generator.release.url", "must be an http or https URL without userinfo")
	}
	parts := strings.Split(spec.Repository, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, generator.InvalidSpec("spec.generator.release.repository", "%q is not owner/name", spec.Repository)
		}
	}
	if len(parts) < 2 {
		return nil, generator.InvalidSpec("spec.generator.release.repository", "%q is not owner/name", spec.Repository)
	}
	b := apiBase{base: strings.TrimSuffix(base, "/"), origin: originOf(u)}
	switch spec.Provider {
	case exsv1beta1.ReleaseProviderGitHub, exsv1beta1.ReleaseProviderGitea:
		if len(parts) != 2 {
			return nil, generator.InvalidSpec("spec.generator.release.repository", "%q is not owner/name", spec.Repository)
		}
		path := "/repos/" + url.PathEscape(parts[0]) + "/" + url.PathEscape(parts[1]) + "/releases"
		if spec.Provider == exsv1beta1.ReleaseProviderGitHub {
			b.list = b.base + path + "?per_page=100"
			return &github{apiBase: b}, nil
		}
		b.list = b.base + path + "?limit=50"
		return &gitea{apiBase: b}, nil
	case exsv1beta1.ReleaseProviderGitLab:
		id := strings.ReplaceAll(url.PathEscape(spec.Repository), "/", "%2F")
		b.list = b.base + "/projects/" + id + "/releases?per_page=100"
		return &gitlab{apiBase: b}, nil
	default:
		return nil, generator.InvalidSpec("spec.generator.release.provider", "%q is not one of github, gitlab, gitea", spec.Provider)
	}
}

// apiBase is the API a provider talks to. A token is sent only to its
// origin: an asset link elsewhere (GitLab release links may point
// anywhere) is fetched without it.
type apiBase struct {
	base, origin string
	list         string
}

func (b apiBase) firstPage() string { return b.list }

// sameOrigin reports whether u is on the API's origin.
func (b apiBase) sameOrigin(u string) bool {
	p, err := url.Parse(u)
	return err == nil && originOf(p) == b.origin
}

// originOf is scheme://host:port, the port explicit.
func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// github is GitHub's REST API: GET /repos/{owner}/{repo}/releases, assets
// downloaded from their API url with Accept: application/octet-stream
// (which redirects to the CDN), digest "sha256:<hex>" per asset.
type github struct{ apiBase }

func (g *github) headers(token string) http.Header {
	h := http.Header{"Accept": {"application/vnd.github+json"}, "X-Github-Api-Version": {"2022-11-28"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return h
}

func (g *github) downloadHeaders(token string) http.Header {
	h := g.headers(token)
	h.Set("Accept", "application/octet-stream")
	return h
}

func (g *github) parse(data []byte) ([]release, error) {
	return parseReleases(data, func(a releaseAsset) asset {
		return asset{Name: a.Name, DownloadURL: a.URL, Digest: a.Digest, Identity: a.identity()}
	})
}

// gitea is Gitea's and Forgejo's API v1: GET /repos/{owner}/{repo}/releases,
// assets at browser_download_url, no digest.
type gitea struct{ apiBase }

func (g *gitea) headers(token string) http.Header {
	h := http.Header{"Accept": {"application/json"}}
	if token != "" {
		h.Set("Authorization", "token "+token)
	}
	return h
}

func (g *gitea) downloadHeaders(token string) http.Header {
	h := g.headers(token)
	h.Del("Accept")
	return h
}

func (g *gitea) parse(data []byte) ([]release, error) {
	return parseReleases(data, func(a releaseAsset) asset {
		return asset{Name: a.Name, DownloadURL: a.BrowserDownloadURL, Identity: a.identity()}
	})
}

// releaseAsset is an asset as GitHub and Gitea both list it; each takes
// its download address from a different field, and only GitHub gives a
// digest.
type releaseAsset struct {
	Name               string `json:"name"`
	URL                string `json:"url"`
	BrowserDownloadURL string `json:"browser_download_url"`
	Digest             string `json:"digest"`
	// What changes when an asset is replaced: its id (a new upload is a
	// new asset), size, Gitea's uuid, GitHub's updated_at.
	ID        int64  `json:"id"`
	Size      int64  `json:"size"`
	UUID      string `json:"uuid"`
	UpdatedAt string `json:"updated_at"`
}

// identity is what the list says about the asset's upload; "" when it
// says nothing.
func (a releaseAsset) identity() string {
	if a.ID == 0 && a.Size == 0 && a.UUID == "" && a.UpdatedAt == "" {
		return ""
	}
	return fmt.Sprintf("id=%d size=%d uuid=%s updated=%s", a.ID, a.Size, a.UUID, a.UpdatedAt)
}

// parseReleases reads the release list that GitHub and Gitea share the
// shape of, mapping each asset with toAsset.
func parseReleases(data []byte, toAsset func(releaseAsset) asset) ([]release, error) {
	var rs []struct {
		TagName     string         `json:"tag_name"`
		Draft       bool           `json:"draft"`
		Prerelease  bool           `json:"prerelease"`
		HTMLURL     string         `json:"html_url"`
		PublishedAt time.Time      `json:"published_at"`
		Assets      []releaseAsset `json:"assets"`
	}
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, err
	}
	out := make([]release, 0, len(rs))
	for _, r := range rs {
		rel := release{Tag: r.TagName, Draft: r.Draft, Prerelease: r.Prerelease, URL: r.HTMLURL, PublishedAt: r.PublishedAt}
		for _, a := range r.Assets {
			rel.Assets = append(rel.Assets, toAsset(a))
		}
		out = append(out, rel)
	}
	return out, nil
}

// gitlab is GitLab's API v4: GET /projects/{id}/releases, assets are the
// release's links (direct_asset_url when set). GitLab has no prerelease
// flag (a semver prerelease tag counts as one) and "upcoming" releases
// (released_at in the future) are treated as drafts.
type gitlab struct{ apiBase }

func (g *gitlab) headers(token string) http.Header {
	h := http.Header{"Accept": {"application/json"}}
	if token != "" {
		h.Set("Private-Token", token)
	}
	return h
}

func (g *gitlab) downloadHeaders(token string) http.Header {
	h := g.headers(token)
	h.Del("Accept")
	return h
}

func (g *gitlab) parse(data []byte) ([]release, error) {
	var rs []struct {
		TagName    string    `json:"tag_name"`
		ReleasedAt time.Time `json:"released_at"`
		Upcoming   bool      `json:"upcoming_release"`
		Links      struct {
			Self string `json:"self"`
		} `json:"_links"`
		Assets struct {
			Links []struct {
				ID             int64  `json:"id"`
				Name           string `json:"name"`
				URL            string `json:"url"`
				DirectAssetURL string `json:"direct_asset_url"`
			} `json:"links"`
		} `json:"assets"`
	}
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, err
	}
	out := make([]release, 0, len(rs))
	for _, r := range rs {
		rel := release{Tag: r.TagName, Draft: r.Upcoming, URL: r.Links.Self, PublishedAt: r.ReleasedAt}
		for _, a := range r.Assets.Links {
			u := a.DirectAssetURL
			if u == "" {
				u = a.URL
			}
			id := ""
			if a.ID != 0 {
				id = fmt.Sprintf("id=%d", a.ID)
			}
			rel.Assets = append(rel.Assets, asset{Name: a.Name, DownloadURL: u, Identity: id})
		}
		out = append(out, rel)
	}
	return out, nil
}
