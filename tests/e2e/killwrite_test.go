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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// storageTempFile is the name of the temporary file Flux's AtomicWriteFile
// writes an artifact to before renaming it: os.CreateTemp(dir, "<file>").
var storageTempFile = regexp.MustCompile(`\.tar\.gz[0-9]+$`)

// TestControllerKilledMidStorageWrite: a controller killed (SIGKILL) while
// it writes an artifact to the filesystem storage, then started again with
// the same storage and the same TMPDIR (a container restart keeps its
// emptyDir), leaves nothing behind: the temporary file is removed at
// start-up, the killed process's spool directory is removed, and exactly
// one artifact is stored and published.
//
// The kill lands mid-write deterministically: the upstream serves tens of
// MiB of incompressible bytes, the test polls the object's directory for
// the temporary file, stops the process (SIGSTOP), checks the file is still
// there (so the write had not finished), and only then kills it.
func TestControllerKilledMidStorageWrite(t *testing.T) {
	g := NewWithT(t)
	const size = 40 << 20 // under the default --max-response-size (50 MiB)
	body := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{'k', 'i', 'l', 'l'})
	_, _ = rng.Read(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body)
	}))
	defer srv.Close()

	storageDir, tmpDir := t.TempDir(), t.TempDir()
	storageAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	args := []string{"--watch-label-selector=e2e.externalsource.io/shard=killwrite",
		"--storage-backend=filesystem", "--storage-path=" + storageDir,
		"--storage-addr=" + storageAddr, "--storage-adv-addr=" + storageAddr, allowLoopback,
		"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0"}
	env := []string{"TMPDIR=" + tmpDir}
	first, err := startCmdEnv("killwrite-controller-1", bin, kubeconfig, env, args...)
	g.Expect(err).ToNot(HaveOccurred())

	const ns, name = "killed-write", "victim"
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"e2e.externalsource.io/shard": "killwrite"}},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			Timeout:         &metav1.Duration{Duration: 2 * time.Minute},
			DestinationPath: "data.bin",
			Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: srv.URL}},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())

	// Wait for the temporary file of the artifact write, stop the
	// process, and kill it only if the write is still unfinished.
	objDir := filepath.Join(storageDir, "externalsource", ns, name)
	tempFile := ""
	deadline := time.Now().Add(2 * timeout)
	for tempFile == "" && time.Now().Before(deadline) {
		entries, _ := os.ReadDir(objDir)
		for _, e := range entries {
			if storageTempFile.MatchString(e.Name()) {
				tempFile = filepath.Join(objDir, e.Name())
			}
		}
		if tempFile == "" {
			// Often enough for a 40 MiB write, rarely enough not to
			// slow it down.
			time.Sleep(2 * time.Millisecond)
		}
	}
	g.Expect(tempFile).ToNot(BeEmpty(), "no artifact write seen")
	g.Expect(first.Process.Signal(syscall.SIGSTOP)).To(Succeed())
	g.Eventually(func() string { return procState(first.Process.Pid) }, timeout, time.Millisecond).Should(Equal("T"))
	g.Expect(tempFile).To(BeAnExistingFile(),
		"the write finished between seeing its temporary file and stopping the process: make the body larger")
	written, err := os.Stat(tempFile)
	g.Expect(err).ToNot(HaveOccurred())
	t.Logf("killing the controller with %d of about %d bytes written to %s", written.Size(), size, filepath.Base(tempFile))

	// The killed process's spool: its only directory, holding the fetch's file.
	spoolRoot := filepath.Join(tmpDir, "externalsource-spool")
	firstSpool := spoolDirs(g, spoolRoot)
	g.Expect(firstSpool).To(HaveLen(1))
	fetched, err := filepath.Glob(filepath.Join(firstSpool[0], "externalsource-data-*"))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(fetched).To(HaveLen(1), "the fetch is spooled in the process's spool directory")

	g.Expect(first.Process.Signal(syscall.SIGKILL)).To(Succeed())
	_ = first.Wait()
	// What the kill left, before the restart.
	g.Expect(tempFile).To(BeAnExistingFile())
	g.Expect(firstSpool[0]).To(BeADirectory())

	second, err := startCmdEnv("killwrite-controller-2", bin, kubeconfig, env, args...)
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { _ = second.Process.Signal(syscall.SIGTERM); _ = second.Wait() })

	var cur exsv1beta1.ExternalSource
	ea := &sourcev1.ExternalArtifact{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), &cur)).To(Succeed())
		g.Expect(conditions.IsReady(&cur)).To(BeTrue())
		g.Expect(cur.Status.Artifact).ToNot(BeNil())
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), ea)).To(Succeed())
		g.Expect(ea.Status.Artifact).ToNot(BeNil())
		g.Expect(ea.Status.Artifact.Revision).To(Equal(cur.Status.Artifact.Revision))
	}, 2*timeout).Should(Succeed())

	// The temporary file went at start-up (the log names it), before any
	// reconcile could garbage-collect it.
	log, err := os.ReadFile(filepath.Join(workDir, "killwrite-controller-2.log"))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(logLine(string(log), "removed what interrupted storage writes left")).
		To(ContainSubstring(filepath.Base(tempFile)))

	// Exactly one file in storage besides lock files: the published
	// artifact, which the ExternalArtifact points at.
	var files []string
	g.Expect(filepath.Walk(storageDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.HasSuffix(p, ".lock") {
			files = append(files, p)
		}
		return err
	})).To(Succeed())
	hexDigest := strings.TrimPrefix(cur.Status.Artifact.Digest, "sha256:")
	g.Expect(files).To(ConsistOf(filepath.Join(objDir, hexDigest+".tar.gz")))
	g.Expect(ea.Status.Artifact.Path).To(Equal("externalsource/" + ns + "/" + name + "/" + hexDigest + ".tar.gz"))
	g.Expect(ea.Status.Artifact.Digest).To(Equal(cur.Status.Artifact.Digest))
	resp, err := http.Get(ea.Status.Artifact.URL)
	g.Expect(err).ToNot(HaveOccurred())
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	resp.Body.Close()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Expect(hex.EncodeToString(h.Sum(nil))).To(Equal(hexDigest), "the served artifact is whole")

	// The killed process's spool directory is gone; what remains in the
	// TMPDIR is the live process's spool, empty between reconciles.
	g.Expect(firstSpool[0]).ToNot(BeAnExistingFile())
	g.Expect(logLine(string(log), "spool directory ready")).To(ContainSubstring(`"staleRemoved":1`))
	g.Eventually(func(g Gomega) {
		top, err := os.ReadDir(tmpDir)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(names(top)).To(ConsistOf("externalsource-spool"))
		dirs := spoolDirs(g, spoolRoot)
		g.Expect(dirs).To(HaveLen(1))
		inside, err := os.ReadDir(dirs[0])
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(names(inside)).To(ConsistOf(".lock"))
	}, timeout).Should(Succeed())

	// One revision, published once (events are recorded asynchronously).
	newArtifacts := func(g Gomega) int {
		var evs corev1.EventList
		g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		n := 0
		for _, e := range evs.Items {
			if e.Reason == exsv1beta1.NewArtifactReason && e.InvolvedObject.Kind == exsv1beta1.ExternalSourceKind {
				n += int(max(e.Count, 1))
			}
		}
		return n
	}
	g.Eventually(newArtifacts, timeout).Should(Equal(1))
	g.Consistently(newArtifacts, 2*time.Second, 500*time.Millisecond).Should(Equal(1))
}

// procState is the state letter of a process (/proc/<pid>/stat): "T" once
// a SIGSTOP has taken effect.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// spoolDirs lists the process directories of a spool root.
func spoolDirs(g Gomega, root string) []string {
	entries, err := os.ReadDir(root)
	g.Expect(err).ToNot(HaveOccurred())
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	return dirs
}

func names(entries []os.DirEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name()
	}
	return out
}

// logLine returns the first line of a log that contains msg.
func logLine(log, msg string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, msg) {
			return l
		}
	}
	return ""
}
