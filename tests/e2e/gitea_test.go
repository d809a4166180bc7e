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

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// giteaServer is a real Gitea (bin/gitea, built by hack/tools.sh from the
// module proxy) on loopback, with an admin user and its API token. One
// serves the whole suite; each test makes repositories of its own.
type giteaServer struct {
	// URL is the web origin, e.g. http://127.0.0.1:41234; the API is
	// URL+"/api/v1".
	URL string
	// User owns the repositories; Token is its access token (scope all).
	User, Token string
	dir         string
}

var (
	giteaOnce sync.Once
	giteaSrv  *giteaServer
	giteaErr  error
)

// gitea returns the suite's Gitea, starting it on first use.
func gitea(t *testing.T) *giteaServer {
	t.Helper()
	giteaOnce.Do(func() { giteaSrv, giteaErr = startGitea() })
	if giteaErr != nil {
		t.Fatalf("gitea: %v", giteaErr)
	}
	return giteaSrv
}

// giteaConfig is the app.ini of a Gitea that reaches nothing but loopback:
// offline mode (no avatars or assets from other hosts), no update checker
// or other cron jobs, no mail, no SSH, no Actions; sqlite (the pure-Go
// driver), memory caches and sessions, the install locked.
const giteaConfig = `APP_NAME = externalsource-e2e
RUN_MODE = prod
RUN_USER = root
WORK_PATH = {{dir}}
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {{port}}
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:{{port}}/
APP_DATA_PATH = {{dir}}/data
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = {{dir}}/data/gitea.db
LOG_SQL = false

[repository]
ROOT = {{dir}}/repositories
DEFAULT_BRANCH = main

[repository.release]
ALLOWED_TYPES =

[security]
INSTALL_LOCK = true
SECRET_KEY = {{secret}}
INTERNAL_TOKEN = {{internal}}
PASSWORD_HASH_ALGO = pbkdf2

[oauth2]
JWT_SECRET = {{jwt}}

[service]
DISABLE_REGISTRATION = true
DEFAULT_KEEP_EMAIL_PRIVATE = true

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[migrations]
ALLOW_LOCALNETWORKS = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = {{dir}}/log
`

// startGitea writes a temporary app.ini, migrates the database, creates
// the admin with a token (`gitea admin user create --access-token`) and
// serves on a free loopback port until the suite ends.
func startGitea() (*giteaServer, error) {
	bin := filepath.Join(devenv.Root(), "bin", "gitea")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found: run `make tools` first", bin)
	}
	dir := filepath.Join(workDir, "gitea")
	if err := os.MkdirAll(filepath.Join(dir, "custom", "conf"), 0o755); err != nil {
		return nil, err
	}
	addr, err := devenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	port := addr[strings.LastIndex(addr, ":")+1:]
	conf := filepath.Join(dir, "custom", "conf", "app.ini")
	r := strings.NewReplacer("{{dir}}", dir, "{{port}}", port, "{{secret}}", randomHex(32),
		"{{internal}}", randomHex(32), "{{jwt}}", randomHex(32))
	if err := os.WriteFile(conf, []byte(r.Replace(giteaConfig)), 0o600); err != nil {
		return nil, err
	}
	common := []string{"--config", conf, "--work-path", dir}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(common, args...)...)
		cmd.Env = giteaEnv(dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("gitea %s: %w: %s", args[0], err, out)
		}
		return string(out), nil
	}
	if _, err := run("migrate"); err != nil {
		return nil, err
	}
	s := &giteaServer{URL: "http://127.0.0.1:" + port, User: "exs-admin", dir: dir}
	out, err := run("admin", "user", "create", "--username", s.User, "--password", randomHex(16),
		"--email", "exs-admin@example.invalid", "--admin", "--must-change-password=false", "--access-token",
		"--access-token-name", "e2e", "--access-token-scopes", "all")
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`Access token was successfully created\.\.\. ([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("gitea admin user create printed no token: %s", out)
	}
	s.Token = m[1]

	log, err := os.Create(filepath.Join(workDir, "gitea.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append(common, "web")...)
	cmd.Env = giteaEnv(dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	procs = append(procs, cmd)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(s.URL + "/api/v1/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			return nil, fmt.Errorf("gitea did not answer on %s within 2m: %v; its log:\n%s", s.URL, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// giteaEnv is the environment of the Gitea processes: a HOME of their own
// (git's configuration) and nothing of the test's Git setup.
func giteaEnv(dir string) []string {
	env := []string{"HOME=" + filepath.Join(dir, "home"), "USER=root", "GITEA_WORK_DIR=" + dir}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// api sends an API request as the admin and decodes a JSON answer into
// out (when not nil); any status but want is an error.
func (s *giteaServer) api(method, path string, body any, want int, out any) error {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case *multipartBody:
		rd, ctype = &b.buf, b.ctype
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, s.URL+"/api/v1"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+s.Token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type multipartBody struct {
	buf   bytes.Buffer
	ctype string
}

// createRepo creates a repository of the admin with an initial commit on
// main (a release needs a commit to tag).
func (s *giteaServer) createRepo(name string, private bool) error {
	return s.api(http.MethodPost, "/user/repos", map[string]any{"name": name, "private": private, "auto_init": true,
		"default_branch": "main", "readme": "Default"}, http.StatusCreated, nil)
}

// publishRelease creates a release of tag on main and uploads its assets
// (in name order), as a project's release pipeline does.
func (s *giteaServer) publishRelease(repo, tag string, prerelease bool, assets map[string][]byte) error {
	var rel struct {
		ID int64 `json:"id"`
	}
	if err := s.api(http.MethodPost, "/repos/"+s.User+"/"+repo+"/releases", map[string]any{"tag_name": tag, "name": tag,
		"target_commitish": "main", "prerelease": prerelease, "body": "release " + tag}, http.StatusCreated, &rel); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(assets)) {
		mb := &multipartBody{}
		w := multipart.NewWriter(&mb.buf)
		fw, err := w.CreateFormFile("attachment", name)
		if err != nil {
			return err
		}
		if _, err := fw.Write(assets[name]); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		mb.ctype = w.FormDataContentType()
		if err := s.api(http.MethodPost, fmt.Sprintf("/repos/%s/%s/releases/%d/assets?name=%s", s.User, repo, rel.ID, url.QueryEscape(name)),
			mb, http.StatusCreated, nil); err != nil {
			return err
		}
	}
	return nil
}
