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

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// shardLabel is Flux's sharding label.
const shardLabel = "sharding.fluxcd.io/key"

// ShardingReport is what the sharding scenario measured and checked.
type ShardingReport struct {
	Processes []ShardProcess `json:"processes"`
	// Downloads of every checked artifact from every process's artifact
	// server, and how many failed or did not match the digest.
	Downloads        int `json:"downloads"`
	DownloadFailures int `json:"downloadFailures"`

	// The move: Moved sources relabelled from shard1 to shard2.
	Moved       int     `json:"moved"`
	MoveSeconds float64 `json:"moveSeconds"`
	// NewOwnerReconciled is how many moved sources the new shard
	// reconciled; OldOwnerReconciles the reconciles of moved sources by
	// the old shard after the relabel (want 0).
	NewOwnerReconciled int `json:"newOwnerReconciled"`
	OldOwnerReconciles int `json:"oldOwnerReconciles"`
	// BucketBefore and BucketAfter count the bucket's objects around the
	// move; Duplicated and Lost compare the key sets.
	BucketBefore int `json:"bucketBefore"`
	BucketAfter  int `json:"bucketAfter"`
	Duplicated   int `json:"duplicated"`
	Lost         int `json:"lost"`
	// NewArtifactsOnMove counts revisions published by the move (want 0);
	// ReadyFalseOnMove the Ready=False seen meanwhile (want 0).
	NewArtifactsOnMove int `json:"newArtifactsOnMove"`
	ReadyFalseOnMove   int `json:"readyFalseOnMove"`
	// After a new upstream revision of every moved source: the new
	// revisions published, the moved sources whose bucket directory
	// holds exactly the new artifact (the previous one collected by the
	// new owner, --artifact-retention-records=1), and the old shard's
	// reconciles of them meanwhile (want 0).
	RevisionsPublished  int `json:"revisionsPublished"`
	CollectedByNewOwner int `json:"collectedByNewOwner"`
	OldOwnerGCReconcile int `json:"oldOwnerGcReconciles"`
}

// ShardProcess is one controller process of the sharding scenario.
type ShardProcess struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
	// Assigned is the number of sources labelled for it; Reconciled the
	// distinct sources its metrics show reconciles of (by name); Foreign
	// those of them not assigned to it (want 0).
	Assigned   int     `json:"assigned"`
	Reconciled int     `json:"reconciled"`
	Foreign    int     `json:"foreign"`
	Reconciles int64   `json:"reconciles"`
	RSSMiB     float64 `json:"rssMiB"`
}

// shardOf returns the shard of source i ("" for the main instance).
func (r *run) shardOf(i int) string {
	if k := i % (r.cfg.Shards + 1); k > 0 {
		return "shard" + strconv.Itoa(k)
	}
	return ""
}

// phaseSharding starts Shards shard processes and the main instance, all
// on one S3 bucket, creates the sources spread over them, checks that each
// process reconciles only its own and that every process serves every
// artifact, then moves Moved sources from shard1 to shard2 by relabelling.
func (r *run) phaseSharding(ctx context.Context, logf func(string, ...any)) error {
	cfg := r.cfg
	if cfg.Backend != "s3" || cfg.Shards < 2 {
		return errors.New("sharding: needs the s3 backend and at least 2 shards")
	}
	sr := &ShardingReport{}
	r.rep.Sharding = sr
	// The main instance is r's controller (RSS sampling, reconciles).
	selectors := []string{"!" + shardLabel}
	for k := 1; k <= cfg.Shards; k++ {
		selectors = append(selectors, fmt.Sprintf("%s in (shard%d)", shardLabel, k))
	}
	// One retained artifact per source: a new revision collects the
	// previous one at once, so the collector is visible in the bucket.
	retention := []string{"--artifact-retention-records=1", "--artifact-retention-ttl=1s"}
	var procs []*proc
	for k, sel := range selectors {
		extra := append([]string{"--watch-label-selector=" + sel}, retention...)
		name := cfg.Name + "-main"
		if k > 0 {
			name = fmt.Sprintf("%s-shard%d", cfg.Name, k)
		}
		p, err := r.startProc(ctx, name, extra, true)
		if err != nil {
			return err
		}
		r.procs = append(r.procs, p)
		procs = append(procs, p)
		sr.Processes = append(sr.Processes, ShardProcess{Name: name, Selector: sel})
	}
	main := procs[0]
	r.proc, r.pid, r.metrics = main, main.pid, main.metrics
	r.sampler = &sampler{start: time.Now()}
	go r.sampler.run(ctx, main.pid, 250*time.Millisecond, main.exited)
	time.Sleep(2 * time.Second)
	if ps, err := ReadProc(main.pid); err == nil {
		r.rep.BaselineRSSMiB = ps.RSSMiB
	}

	owner := func(i int) int {
		if s := r.shardOf(i); s != "" {
			k, _ := strconv.Atoi(strings.TrimPrefix(s, "shard"))
			return k
		}
		return 0
	}
	r.labels = func(i int) map[string]string {
		if s := r.shardOf(i); s != "" {
			return map[string]string{shardLabel: s}
		}
		return nil
	}
	if err := r.phaseCreate(ctx, logf); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)

	// Each process reconciled only its own sources.
	counts := make([]map[string]int64, len(procs))
	for k, p := range procs {
		c, err := readReconcilesByName(ctx, p.metrics)
		if err != nil {
			return err
		}
		counts[k] = c
		sp := &sr.Processes[k]
		for i := range cfg.N {
			if owner(i) == k {
				sp.Assigned++
			}
		}
		for name, n := range c {
			sp.Reconciled++
			sp.Reconciles += n
			i, _ := strconv.Atoi(strings.TrimPrefix(name, "src-"))
			if owner(i) != k {
				sp.Foreign++
			}
		}
		if ps, err := ReadProc(p.pid); err == nil {
			sp.RSSMiB = ps.RSSMiB
		}
	}
	logf("sharding: processes %+v", sr.Processes)

	// Every artifact from every process's server.
	eas := &sourcev1.ExternalArtifactList{}
	if err := r.c.List(ctx, eas, client.InNamespace(namespace)); err != nil {
		return err
	}
	step := max(1, len(eas.Items)/500)
	for j := 0; j < len(eas.Items); j += step {
		a := eas.Items[j].Status.Artifact
		for _, p := range procs {
			sr.Downloads++
			if err := fetchArtifact(ctx, "http://"+p.storage+"/"+a.Path, a.Digest); err != nil {
				sr.DownloadFailures++
				logf("sharding: %s from %s: %v", a.Path, p.name, err)
			}
		}
	}
	logf("sharding: %d downloads, %d failed", sr.Downloads, sr.DownloadFailures)

	// The move.
	var moved []int
	for i := 0; i < cfg.N && len(moved) < cfg.Moved; i++ {
		if owner(i) == 1 {
			moved = append(moved, i)
		}
	}
	sr.Moved = len(moved)
	before, err := r.bucketKeys(ctx)
	if err != nil {
		return err
	}
	sr.BucketBefore = len(before)
	p0, f0 := r.tr.publishedCount(), r.tr.readyFalseCount()
	start := time.Now()
	logf("sharding: moving %d sources from shard1 to shard2", len(moved))
	if err := parallel(ctx, len(moved), 16, func(j int) error {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"shard2"}}}`, shardLabel)
		obj := &exsv1beta1.ExternalSource{}
		obj.Name, obj.Namespace = r.name(moved[j]), namespace
		return r.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
	}); err != nil {
		return err
	}
	movedBy := func(k int) (int, int64, error) {
		c, err := readReconcilesByName(ctx, procs[k].metrics)
		if err != nil {
			return 0, 0, err
		}
		seen, delta := 0, int64(0)
		for _, i := range moved {
			if d := c[r.name(i)] - counts[k][r.name(i)]; d > 0 {
				seen++
				delta += d
			}
		}
		return seen, delta, nil
	}
	deadline := time.Now().Add(cfg.ReadyTimeout)
	for {
		seen, _, err := movedBy(2)
		if err != nil {
			return err
		}
		sr.NewOwnerReconciled = seen
		if seen == len(moved) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sharding: shard2 reconciled %d of %d moved sources within %s", seen, len(moved), cfg.ReadyTimeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
	sr.MoveSeconds = time.Since(start).Seconds()
	time.Sleep(3 * time.Second)
	_, old, err := movedBy(1)
	if err != nil {
		return err
	}
	sr.OldOwnerReconciles = int(old)
	after, err := r.bucketKeys(ctx)
	if err != nil {
		return err
	}
	sr.BucketAfter = len(after)
	for k := range after {
		if !before[k] {
			sr.Duplicated++
		}
	}
	for k := range before {
		if !after[k] {
			sr.Lost++
		}
	}
	sr.NewArtifactsOnMove = int(r.tr.publishedCount() - p0)
	sr.ReadyFalseOnMove = r.tr.readyFalseCount() - f0
	logf("sharding: moved in %.1fs; new owner reconciled %d, old owner %d reconciles; bucket %d -> %d (+%d -%d); new artifacts %d; Ready=False %d",
		sr.MoveSeconds, sr.NewOwnerReconciled, sr.OldOwnerReconciles, sr.BucketBefore, sr.BucketAfter, sr.Duplicated, sr.Lost,
		sr.NewArtifactsOnMove, sr.ReadyFalseOnMove)

	// A new revision of every moved source: published and collected by
	// the new owner.
	for k := range counts {
		if counts[k], err = readReconcilesByName(ctx, procs[k].metrics); err != nil {
			return err
		}
	}
	p1 := r.tr.publishedCount()
	token := strconv.FormatInt(time.Now().UnixNano(), 10)
	for _, i := range moved {
		r.up.Change(i)
		r.tr.expectRevision(r.name(i))
	}
	if err := parallel(ctx, len(moved), 16, func(j int) error { return r.requestReconcile(ctx, moved[j], token) }); err != nil {
		return err
	}
	deadline = time.Now().Add(cfg.ReadyTimeout)
	for r.tr.pendingCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	sr.RevisionsPublished = int(r.tr.publishedCount() - p1)
	if _, old, err = movedBy(1); err != nil {
		return err
	}
	sr.OldOwnerGCReconcile = int(old)
	keys, err := r.bucketKeys(ctx)
	if err != nil {
		return err
	}
	for _, i := range moved {
		obj := &exsv1beta1.ExternalSource{}
		if err := r.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: r.name(i)}, obj); err != nil {
			return err
		}
		dir := "/" + namespace + "/" + r.name(i) + "/"
		var inDir []string
		for k := range keys {
			if strings.Contains("/"+k, dir) {
				inDir = append(inDir, k)
			}
		}
		if a := obj.Status.Artifact; a != nil && len(inDir) == 1 && strings.HasSuffix(a.Path, inDir[0]) {
			sr.CollectedByNewOwner++
		}
	}
	logf("sharding: new revisions %d of %d; collected by the new owner %d; old owner reconciles %d",
		sr.RevisionsPublished, len(moved), sr.CollectedByNewOwner, sr.OldOwnerGCReconcile)
	return nil
}

// bucketKeys lists the bucket.
func (r *run) bucketKeys(ctx context.Context) (map[string]bool, error) {
	c, err := r.s3.Client()
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for o := range c.ListObjects(ctx, s3Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return nil, o.Err
		}
		keys[o.Key] = true
	}
	return keys, nil
}

// fetchArtifact downloads url and compares its sha256 with digest.
func fetchArtifact(ctx context.Context, url, digest string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("digest %s, want %s", got, digest)
	}
	return nil
}

// readReconcilesByName reads gotk_reconcile_duration_seconds_count (one
// series per reconciled object) from a controller's metrics: the number
// of reconciles by object name.
func readReconcilesByName(ctx context.Context, metricsAddr string) (map[string]int64, error) {
	series, err := scrapeProm(ctx, metricsAddr, func(n string) bool { return n == "gotk_reconcile_duration_seconds_count" })
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, s := range series {
		if s.labels["kind"] == exsv1beta1.ExternalSourceKind && s.labels["namespace"] == namespace {
			out[s.labels["name"]] += int64(s.value)
		}
	}
	return out, nil
}
