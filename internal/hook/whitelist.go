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
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// DefaultTimeout is a hook's timeout when neither the hook nor the
// whitelist entry names one.
const DefaultTimeout = 10 * time.Second

// neverAllowed are environment names no whitelist can allow: they change
// how a program or its dynamic loader behaves (preloads, shell start-up
// files, search paths) and so turn an allowed command into any command.
var neverAllowed = []string{"PATH", "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH",
	"GCONV_PATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "TMPDIR", "HOME", "NLSPATH", "PYTHONPATH",
	"PYTHONSTARTUP", "PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "JQ_LIBRARY_PATH", "GODEBUG"}

// neverAllowedPrefixes are prefixes of environment names never allowed.
var neverAllowedPrefixes = []string{"LD_", "DYLD_", "BASH_FUNC_"}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Command is one whitelist entry: the only binary a hook's command name
// runs, the arguments it may take, the environment it may set.
type Command struct {
	// Name is what a hook writes in `command`.
	Name string `json:"name"`
	// Path is the absolute path of the binary.
	Path string `json:"path"`
	// Args are regular expressions; every argument must fully match one.
	Args []string `json:"args,omitempty"`
	// Env lists the environment names a hook may set.
	Env []string `json:"env,omitempty"`
	// MaxTimeout caps a hook's timeout.
	MaxTimeout metav1.Duration `json:"maxTimeout,omitempty"`
	// ReadPaths are the absolute paths (files or directories) the command
	// may read and execute besides its binary, in the sandbox. Absent
	// means DefaultReadPaths (enough for a dynamically linked program);
	// an empty list means the binary alone.
	ReadPaths []string `json:"readPaths,omitempty"`
	// Network allows TCP bind and connect in the sandbox; denied when false.
	Network bool `json:"network,omitempty"`
	// Limits are the per-run resource limits; absent fields take the
	// defaults (DefaultLimits).
	Limits *Limits `json:"limits,omitempty"`

	args   []*regexp.Regexp
	policy SandboxPolicy
}

// Limits is a whitelist entry's per-run resource limits, as written by
// the admin.
type Limits struct {
	// Memory caps the resident memory of the run (all its processes) and
	// each process's data segment (RLIMIT_DATA).
	Memory *resource.Quantity `json:"memory,omitempty"`
	// CPU caps the CPU time of each process of the run (RLIMIT_CPU).
	CPU *metav1.Duration `json:"cpu,omitempty"`
	// FileSize caps the size of a file the run writes (RLIMIT_FSIZE).
	FileSize *resource.Quantity `json:"fileSize,omitempty"`
	// Processes caps the processes and threads of the run.
	Processes *int64 `json:"processes,omitempty"`
	// OpenFiles caps the open file descriptors of each process
	// (RLIMIT_NOFILE).
	OpenFiles *int64 `json:"openFiles,omitempty"`
}

// DefaultReadPaths are what a whitelist entry without readPaths may read
// (besides its binary): the shared libraries and the loader's cache of a
// dynamically linked program, and nothing else. Paths that do not exist
// are skipped.
var DefaultReadPaths = []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache"}

// Default per-run limits, for entries that do not set them.
var (
	DefaultMemory          = resource.MustParse("512Mi")
	DefaultCPU             = 30 * time.Second
	DefaultFileSize        = resource.MustParse("64Mi")
	DefaultProcesses int64 = 32
	DefaultOpenFiles int64 = 64
)

// Whitelist is the admin's list of commands hooks may run.
type Whitelist struct {
	Commands []Command `json:"commands"`

	byName map[string]*Command
	// generation is Generation, computed once by Parse: the controller
	// and the sidecar ask for it at every run, and a whitelist is not
	// changed once parsed (a reload parses a new one).
	generation string
}

// Parse reads and validates a whitelist. Patterns are anchored whatever
// the admin wrote: `^(?:pattern)$`, so `-r` never matches `-rf`.
//
// An empty file is an error, not an empty whitelist: it is what a reader
// sees in the middle of an in-place write, and taking it as the last good
// whitelist would hide the write's real result. `commands: []` disables
// every hook explicitly.
func Parse(data []byte) (*Whitelist, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errors.New("whitelist: the file is empty (write `commands: []` to allow nothing)")
	}
	var wl Whitelist
	if err := yaml.UnmarshalStrict(data, &wl); err != nil {
		return nil, fmt.Errorf("whitelist: %w", err)
	}
	wl.byName = map[string]*Command{}
	for i := range wl.Commands {
		c := &wl.Commands[i]
		at := fmt.Sprintf("whitelist: commands[%d]", i)
		if c.Name == "" {
			return nil, fmt.Errorf("%s: name is required", at)
		}
		if _, dup := wl.byName[c.Name]; dup {
			return nil, fmt.Errorf("%s: name %q is listed twice", at, c.Name)
		}
		if !filepath.IsAbs(c.Path) || filepath.Clean(c.Path) != c.Path {
			return nil, fmt.Errorf("%s (%s): path %q must be a clean absolute path", at, c.Name, c.Path)
		}
		for j, p := range c.Args {
			// A pattern must be a regular expression on its own before it
			// is anchored: `-r)|(\.[a-z]+` compiles once wrapped, as
			// `^(?:-r)|(\.[a-z]+)$`, and then matches anything that
			// starts with -r.
			if _, err := syntax.Parse(p, syntax.Perl); err != nil {
				return nil, fmt.Errorf("%s (%s): args[%d]: %w", at, c.Name, j, err)
			}
			re, err := regexp.Compile(`^(?:` + p + `)$`)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): args[%d]: %w", at, c.Name, j, err)
			}
			c.args = append(c.args, re)
		}
		for _, e := range c.Env {
			if !envName.MatchString(e) {
				return nil, fmt.Errorf("%s (%s): env %q is not a valid name", at, c.Name, e)
			}
			if reason := forbiddenEnv(e); reason != "" {
				return nil, fmt.Errorf("%s (%s): env %q %s", at, c.Name, e, reason)
			}
		}
		if c.MaxTimeout.Duration < 0 {
			return nil, fmt.Errorf("%s (%s): maxTimeout must not be negative", at, c.Name)
		}
		policy, err := c.sandboxPolicy()
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", at, c.Name, err)
		}
		c.policy = policy
		wl.byName[c.Name] = c
	}
	wl.generation = wl.computeGeneration()
	return &wl, nil
}

// sandboxPolicy validates the entry's sandbox fields and fills in the
// defaults.
func (c *Command) sandboxPolicy() (SandboxPolicy, error) {
	p := SandboxPolicy{
		Network:   c.Network,
		Memory:    DefaultMemory.Value(),
		CPU:       DefaultCPU,
		FileSize:  DefaultFileSize.Value(),
		Processes: DefaultProcesses,
		OpenFiles: DefaultOpenFiles,
	}
	for i, rp := range c.ReadPaths {
		if !filepath.IsAbs(rp) || filepath.Clean(rp) != rp {
			return p, fmt.Errorf("readPaths[%d]: %q must be a clean absolute path", i, rp)
		}
		if rp == "/" {
			return p, fmt.Errorf("readPaths[%d]: / would grant the whole filesystem", i)
		}
	}
	// Absent is the defaults; `readPaths: []` is nothing but the binary
	// (a static program such as yq).
	p.ReadPaths = append([]string{}, c.ReadPaths...)
	if c.ReadPaths == nil {
		p.ReadPaths = append([]string(nil), DefaultReadPaths...)
	}
	if l := c.Limits; l != nil {
		positive := func(name string, q *resource.Quantity, into *int64) error {
			if q == nil {
				return nil
			}
			if q.Sign() <= 0 {
				return fmt.Errorf("limits.%s must be positive, not %s", name, q.String())
			}
			*into = q.Value()
			return nil
		}
		if err := positive("memory", l.Memory, &p.Memory); err != nil {
			return p, err
		}
		if err := positive("fileSize", l.FileSize, &p.FileSize); err != nil {
			return p, err
		}
		if l.CPU != nil {
			if l.CPU.Duration < time.Second {
				return p, fmt.Errorf("limits.cpu must be at least 1s (the kernel counts whole seconds), not %s", l.CPU.Duration)
			}
			p.CPU = l.CPU.Duration
		}
		for name, v := range map[string]*int64{"processes": l.Processes, "openFiles": l.OpenFiles} {
			if v != nil && *v <= 0 {
				return p, fmt.Errorf("limits.%s must be positive, not %d", name, *v)
			}
		}
		if l.Processes != nil {
			p.Processes = *l.Processes
		}
		if l.OpenFiles != nil {
			p.OpenFiles = *l.OpenFiles
		}
	}
	return p, nil
}

func forbiddenEnv(name string) string {
	up := strings.ToUpper(name)
	for _, n := range neverAllowed {
		if up == n {
			return "is never allowed"
		}
	}
	for _, p := range neverAllowedPrefixes {
		if strings.HasPrefix(up, p) {
			return fmt.Sprintf("is never allowed (%s*)", p)
		}
	}
	return ""
}

// Resolved is a hook checked against the whitelist: what will run.
type Resolved struct {
	Hook    string
	Path    string
	Args    []string
	Env     []string // NAME=value
	Timeout time.Duration
	// Sandbox is how the run is confined (from the whitelist entry).
	Sandbox SandboxPolicy
}

// RejectedError says the whitelist refused a hook; nothing was executed.
// The reconciler marks the object Stalled until its spec or the whitelist
// changes.
type RejectedError struct {
	Hook   string
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("hook %q rejected by the whitelist: %s", e.Hook, e.Reason)
}

// IsRejected reports whether err is (or wraps) a RejectedError.
func IsRejected(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}

// Check resolves a hook against the whitelist or says why it is refused.
func (wl *Whitelist) Check(h exsv1beta1.Hook) (*Resolved, error) {
	reject := func(format string, args ...any) error {
		return &RejectedError{Hook: h.Name, Reason: fmt.Sprintf(format, args...)}
	}
	if wl == nil {
		return nil, reject("no whitelist is loaded")
	}
	c, ok := wl.byName[h.Command]
	if !ok {
		return nil, reject("command %q is not on the whitelist", h.Command)
	}
	for i, a := range h.Args {
		if !c.allowsArg(a) {
			return nil, reject("argument %d (%q) matches none of the patterns allowed for command %q", i, a, c.Name)
		}
	}
	env := make([]string, 0, len(h.Env))
	for _, e := range h.Env {
		if reason := forbiddenEnv(e.Name); reason != "" {
			return nil, reject("env %q %s", e.Name, reason)
		}
		if !envName.MatchString(e.Name) || !contains(c.Env, e.Name) {
			return nil, reject("env %q is not allowed for command %q", e.Name, c.Name)
		}
		if strings.ContainsRune(e.Value, 0) {
			return nil, reject("env %q has a NUL byte", e.Name)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	timeout := DefaultTimeout
	if h.Timeout != nil && h.Timeout.Duration > 0 {
		timeout = h.Timeout.Duration
	}
	if max := c.MaxTimeout.Duration; max > 0 && timeout > max {
		timeout = max
	}
	return &Resolved{Hook: h.Name, Path: c.Path, Args: append([]string(nil), h.Args...), Env: env, Timeout: timeout, Sandbox: c.policy}, nil
}

func (c *Command) allowsArg(a string) bool {
	if strings.ContainsRune(a, 0) {
		return false
	}
	for _, re := range c.args {
		if re.MatchString(a) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
