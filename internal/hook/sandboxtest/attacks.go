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

// Package sandboxtest holds the hook escape attempts of the sandbox
// acceptance tests, as data, so that the same table runs against the
// executor (internal/hook) and as pre- and post-request hooks of real
// ExternalSources (internal/controller). Only tests import it.
package sandboxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// Env is what the attacks aim at; the test makes it.
type Env struct {
	// WhitelistPath is the sidecar's whitelist file.
	WhitelistPath string
	// TokenPath is a stand-in for the projected service account token;
	// its content is Secret (as a JSON string, so jq could parse it).
	TokenPath string
	// Secret is the token's secret part.
	Secret string
	// OutsideDir is a writable directory outside every run's directory.
	OutsideDir string
	// ModuleDir holds secret.jq and secret.json, jq modules whose content
	// holds Secret, and secret.b64, Secret in base64.
	ModuleDir string
	// VictimPID is a concurrently running hook whose unread stdin holds
	// VictimSecret.
	VictimPID    int
	VictimSecret string
	// VictimDir is that run's working directory, where it left a file
	// holding VictimFileContent.
	VictimDir string
	// TCPAddr is a loopback listener (host:port).
	TCPAddr string
	// UDPAddr is a loopback UDP socket (host:port) counting datagrams.
	UDPAddr string
	// SidecarSocket is the sidecar's own pathname socket (hook.sock).
	SidecarSocket string
	// AbstractSocket is an abstract Unix socket listening (without @).
	AbstractSocket string
	// SidecarPID is the hook executor's pid, for signals.
	SidecarPID int
	// EnvMarker is the value the /proc/self/environ rows give their hook
	// in TZ (a whitelisted name): what a read of the environment would
	// show, so that those rows can tell a refused read from an empty one.
	EnvMarker string
}

// VictimFileContent is what the probe's "hold" mode writes into its
// working directory, as the file "mine".
const VictimFileContent = "victim-workdir-data"

// Attack is one escape attempt.
type Attack struct {
	Name  string
	Hook  exsv1beta1.Hook
	Stdin string
	// ShippedRejects is true when the shipped whitelist's argument
	// patterns already refuse it (the kernel stops it when an admin's
	// patterns are laxer).
	ShippedRejects bool
	// Denied are the kernel's answers, one of which the failure must
	// carry: the hook was stopped by the sandbox, not by a typo.
	Denied []string
	// Never must appear nowhere: not in the output, not in the error.
	Never []string
	// Created must not exist after the attempt.
	Created string
	// Survivor is the command line of a process that must not be
	// running once the attempt is over.
	Survivor string
	// Protection is the protection of docs/hooks.md the row proves
	// (sandbox.Files, Network, Unix, Signals, Syscalls), and Label what
	// part of it, for the kernel table.
	Protection, Label string
}

// The kernel's refusals as the programs print them: jq and the Go
// programs (yq, the probe) print strerror(EACCES) / EPERM.
var (
	permissionDenied = []string{"Permission denied", "permission denied"}
	notPermitted     = []string{"operation not permitted"}
	// A socket is refused by Landlock (EACCES on connect, EPERM by a
	// scope) or by the seccomp filter (EACCES on socket).
	socketDenied = append(append([]string{}, permissionDenied...), notPermitted...)
)

func withTimeout(h exsv1beta1.Hook, d time.Duration) exsv1beta1.Hook {
	h.Timeout = &metav1.Duration{Duration: d}
	return h
}

func jsonInput(kv ...string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Attacks is the table: reading /etc/passwd, the whitelist, the process's
// environment, the token and another run's stdin, and writing outside the
// run's directory, through every file-reading builtin of jq 1.6 and yq v4;
// TCP and UDP to the loopback; the sidecar's socket and abstract Unix
// sockets; ptrace; leaving the process group to outlive the timeout;
// signals out of the run.
// The probe rows need the "probe" entry of TestWhitelist.
func Attacks(e Env) []Attack {
	passwd := []string{"root:x:0:0"}
	secret := []string{e.Secret}
	victimFD := fmt.Sprintf("/proc/%d/fd/0", e.VictimPID)
	victim := []string{e.VictimSecret}
	wl := []string{"name: jq", "commands:"}
	jq := func(args ...string) exsv1beta1.Hook {
		return exsv1beta1.Hook{Name: "attack", Command: "jq", Args: args}
	}
	yq := func(args ...string) exsv1beta1.Hook {
		return exsv1beta1.Hook{Name: "attack", Command: "yq", Args: args}
	}
	probe := func(args ...string) exsv1beta1.Hook {
		return exsv1beta1.Hook{Name: "attack", Command: "probe", Args: args}
	}
	// The environment rows set TZ to the marker: a read that got through
	// would show it.
	environ := []string{e.EnvMarker}
	withTZ := func(h exsv1beta1.Hook) exsv1beta1.Hook {
		h.Env = []exsv1beta1.HookEnvVar{{Name: "TZ", Value: e.EnvMarker}}
		return h
	}
	attacks := []Attack{
		// jq: files only through its command line and modules.
		{Name: "jq --rawfile /etc/passwd", Hook: jq("-n", "--rawfile", "x", "/etc/passwd", "$x"), ShippedRejects: true, Denied: permissionDenied, Never: passwd},
		{Name: "jq --slurpfile token", Hook: jq("-n", "--slurpfile", "x", e.TokenPath, "$x"), ShippedRejects: true, Denied: permissionDenied, Never: secret},
		{Name: "jq file argument: the whitelist", Hook: jq("-R", ".", e.WhitelistPath), ShippedRejects: true, Denied: permissionDenied, Never: wl},
		{Name: "jq file argument: /proc/self/environ", Hook: withTZ(jq("-R", ".", "/proc/self/environ")), ShippedRejects: true, Denied: permissionDenied, Never: environ},
		{Name: "jq file argument: another run's stdin", Hook: jq("-R", ".", victimFD), ShippedRejects: true, Denied: permissionDenied, Never: victim},
		{Name: "jq include with a search path", Hook: jq("-n", "-L", e.ModuleDir, `include "secret"; leak`), ShippedRejects: true, Denied: permissionDenied, Never: secret},
		{Name: "jq import data with a search path", Hook: jq("-n", "-L", e.ModuleDir, `import "secret" as $s; $s`), ShippedRejects: true, Denied: permissionDenied, Never: secret},
		// yq: load operators take a path computed at run time (here from
		// the input, which the tenant controls), so no pattern stops them.
		{Name: "yq load_str /etc/passwd", Hook: yq("load_str(.p)"), Stdin: jsonInput("p", "/etc/passwd"), Denied: permissionDenied, Never: passwd},
		{Name: "yq strload the whitelist", Hook: yq("strload(.p)"), Stdin: jsonInput("p", e.WhitelistPath), Denied: permissionDenied, Never: wl},
		{Name: "yq load the whitelist", Hook: yq("load(.p)"), Stdin: jsonInput("p", e.WhitelistPath), Denied: permissionDenied, Never: wl},
		{Name: "yq load_str /proc/self/environ", Hook: withTZ(yq("load_str(.p)")), Stdin: jsonInput("p", "/proc/self/environ"), Denied: permissionDenied, Never: environ},
		{Name: "yq load_props /proc/self/status", Hook: yq("load_props(.p)"), Stdin: jsonInput("p", "/proc/self/status"), Denied: permissionDenied, Never: []string{"VmRSS"}},
		{Name: "yq load_xml token", Hook: yq("load_xml(.p)"), Stdin: jsonInput("p", e.TokenPath), Denied: permissionDenied, Never: secret},
		{Name: "yq load_base64 a secret", Hook: yq("load_base64(.p)"), Stdin: jsonInput("p", filepath.Join(e.ModuleDir, "secret.b64")), Denied: permissionDenied, Never: secret},
		{Name: "yq load_str token", Hook: yq("load_str(.p)"), Stdin: jsonInput("p", e.TokenPath), Denied: permissionDenied, Never: secret},
		{Name: "yq load_str another run's stdin", Hook: yq("load_str(.p)"), Stdin: jsonInput("p", victimFD), Denied: permissionDenied, Never: victim},
		{Name: "yq eval of a string built at run time", Hook: yq("eval(.e)"), Stdin: jsonInput("e", `load_str("/etc/passwd")`), Denied: permissionDenied, Never: passwd},
		{Name: "yq -i writes outside", Hook: yq("-i", ".a = 1", filepath.Join(e.OutsideDir, "victim.yaml")), ShippedRejects: true, Denied: permissionDenied,
			Never: []string{"a: 1"}},
		{Name: "yq --split-exp writes outside", Hook: yq("-s", ".p", "--security-allow-write-any-path"), Stdin: jsonInput("p", filepath.Join(e.OutsideDir, "split")), ShippedRejects: true,
			Denied: permissionDenied, Created: filepath.Join(e.OutsideDir, "split.yml")},
		// What neither jq nor yq can do, the probe tries.
		{Name: "probe reads the token", Hook: probe("read", e.TokenPath), Denied: permissionDenied, Never: secret},
		{Name: "probe writes outside", Hook: probe("write", filepath.Join(e.OutsideDir, "probe")), Denied: permissionDenied, Created: filepath.Join(e.OutsideDir, "probe")},
		{Name: "probe reads another run's directory", Hook: probe("read", filepath.Join(e.VictimDir, "mine")), Denied: permissionDenied, Never: []string{VictimFileContent}},
		{Name: "yq load_str another run's file", Hook: yq("load_str(.p)"), Stdin: jsonInput("p", filepath.Join(e.VictimDir, "mine")), Denied: permissionDenied, Never: []string{VictimFileContent}},
		{Name: "probe TCP to the loopback", Hook: probe("connect", e.TCPAddr), Denied: socketDenied, Never: []string{"connected"}, Protection: "network", Label: "TCP"},
		{Name: "probe UDP to the loopback", Hook: probe("udp", e.UDPAddr), Denied: socketDenied, Never: []string{"sent"}, Protection: "network", Label: "UDP"},
		{Name: "probe abstract Unix socket", Hook: probe("abstract", e.AbstractSocket), Denied: socketDenied, Never: []string{"connected"}, Protection: "unix", Label: "abstract"},
		{Name: "probe connects to the sidecar's socket", Hook: probe("unix", e.SidecarSocket), Denied: socketDenied, Never: []string{"connected"}, Protection: "unix", Label: "hook.sock"},
		{Name: "probe ptraces another run", Hook: probe("ptrace", fmt.Sprint(e.VictimPID)), Denied: notPermitted, Never: []string{"attached"}, Protection: "syscalls", Label: "ptrace"},
		{Name: "probe setsid outlives the timeout", Hook: withTimeout(probe("setsid", "30"), 2*time.Second), Denied: notPermitted, Never: []string{"escaped"},
			Survivor: "setsid-child 30", Protection: "syscalls", Label: "setsid"},
		{Name: "probe signals the sidecar", Hook: probe("signal", fmt.Sprint(e.SidecarPID)), Denied: notPermitted, Never: []string{"signalled"}, Protection: "signals", Label: "sidecar"},
		{Name: "probe signals another tenant's hook", Hook: probe("signal", fmt.Sprint(e.VictimPID)), Denied: notPermitted, Never: []string{"signalled"}, Protection: "signals", Label: "another run"},
	}
	for i := range attacks {
		if attacks[i].Protection == "" {
			attacks[i].Protection, attacks[i].Label = "files", "files"
		}
	}
	return attacks
}

// ShippedWhitelist returns the example whitelist of config/manager, with
// yq's path pointed at yqPath (the yq the tools module built), and the
// probe entries when probePath is not "": probe (no network, small
// limits) and probe-net (network: true).
func ShippedWhitelist(yqPath, probePath string) (string, error) {
	b, err := os.ReadFile(filepath.Join(devenv.Root(), "config", "manager", "hook-whitelist.yaml"))
	if err != nil {
		return "", err
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(b, &cm); err != nil {
		return "", err
	}
	wl := cm.Data["whitelist.yaml"]
	if !strings.Contains(wl, "path: /usr/bin/yq") {
		return "", fmt.Errorf("the shipped whitelist has no yq at /usr/bin/yq")
	}
	wl = strings.Replace(wl, "path: /usr/bin/yq", "path: "+yqPath, 1)
	if probePath != "" {
		wl += ProbeEntries(probePath)
	}
	return wl, nil
}

// ProbeEntries are the probe's whitelist entries (to append to a
// `commands:` list): small limits, so the limit rows run in a second.
func ProbeEntries(probePath string) string {
	return fmt.Sprintf(`  - name: probe
    path: %[1]s
    args: ['.*']
    readPaths: []
    limits: {memory: 128Mi, cpu: 1s, fileSize: 1Mi, processes: 16, openFiles: 16}
  - name: probe-net
    path: %[1]s
    args: ['.*']
    readPaths: []
    network: true
`, probePath)
}

// Permissive widens every argument pattern of a whitelist to '.*', as a
// careless admin might: the kernel must still stop every attack.
func Permissive(whitelist string) string {
	var out []string
	skip := false
	for _, line := range strings.Split(whitelist, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "args:"):
			indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
			out = append(out, indent+"args: ['.*']")
			skip = !strings.Contains(trimmed, "[")
			continue
		case skip && (strings.HasPrefix(trimmed, "- ") || strings.HasPrefix(trimmed, "#")):
			continue
		}
		skip = false
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// BuildProbe builds the probe (static: it needs no libraries in the
// sandbox) into dir and returns its path.
func BuildProbe(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "probe")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./internal/hook/sandboxtest/probe")
	cmd.Dir = devenv.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the probe: %v: %s", err, b)
	}
	return out, nil
}

// YQ returns the path of the yq the tools module built (bin/yq), not a
// yq of the system (on Debian, /usr/bin/yq is a Python wrapper of jq).
func YQ() (string, error) {
	p := filepath.Join(devenv.Root(), "bin", "yq")
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w (run hack/tools.sh yq)", p, err)
	}
	return real, nil
}
