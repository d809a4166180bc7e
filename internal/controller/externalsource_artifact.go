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
	"context"
	"fmt"
	"io"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/archive"
	"github.com/externalsource/externalsource-controller/internal/iobuf"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// reconcileArtifact packages the data as a deterministic tar.gz and stores
// it when its digest differs from the published one. Same data, same path:
// same bytes, so nothing is stored or published for an unchanged upstream.
func (r *ExternalSourceReconciler) reconcileArtifact(ctx context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	if st.notModified {
		recordFetchResult(obj, st)
		return nil
	}

	// Most archives are a few KiB: built in memory, they cost no file.
	spool := iobuf.NewSpillBuffer(r.TempDir, archiveInMemory)
	defer spool.Close()
	res, err := r.writeArchive(obj, st, spool)
	if err != nil {
		err = fmt.Errorf("packaging data: %w", err)
		conditions.MarkTrue(obj, exsv1beta1.StorageOperationFailedCondition, exsv1beta1.ArchiveOperationFailedReason, "%s", err)
		return transient(exsv1beta1.ArchiveOperationFailedReason, err)
	}

	if cur := obj.GetArtifact(); cur != nil && cur.Digest == res.Digest {
		st.fetchResult = metrics.ResultUnchanged
		recordFetchResult(obj, st)
		return nil
	}
	// Bytes storage lost, fetched again the same, are not a new revision.
	result := metrics.ResultChanged
	if st.lost != nil && st.lost.artifact.Digest == res.Digest {
		result = metrics.ResultUnchanged
	}
	// The result holds once the artifact is stored: a failed store is an
	// error (recordFetch).
	// A new upstream revision is not shown as Reconciling before it is
	// stored, unlike a new generation (requestedWork): the work ends in
	// this same pass, within spec.timeout, and its result (the new
	// artifact with Ready=True, or the failure) is the one status write.
	// Ready stays True with the published revision meanwhile, which is
	// true: that artifact is still served. The progress write would cost
	// the API server two more writes per revision (Reconciling on, then
	// off) that a watcher could barely observe.

	artifact := r.Storage.NewArtifactFor(exsv1beta1.ExternalSourceKind, obj, archive.NamedRevision(st.revisionName, res.Digest), res.Hex()+".tar.gz")
	// The expected digest lets the backend check the bytes as they stream
	// (and S3 store it as metadata in one upload).
	artifact.Digest = res.Digest
	if err := r.store(ctx, &artifact, spool.Reader()); err != nil {
		storage.RecordError(storage.OperationWrite)
		conditions.MarkTrue(obj, exsv1beta1.StorageOperationFailedCondition, exsv1beta1.WriteOperationFailedReason, "storing artifact: %s", err)
		return transient(exsv1beta1.WriteOperationFailedReason, fmt.Errorf("storing artifact: %w", err))
	}
	if st.lost.restoredBy(artifact) {
		// The bytes storage lost are back at their address: the
		// published artifact is true again as it was, so it stays as
		// it was (its time included), and nothing is announced.
		obj.Status.Artifact = st.lost.artifact
		r.Storage.SetArtifactURL(obj.Status.Artifact)
		st.fetchResult = result
		recordFetchResult(obj, st)
		conditions.Delete(obj, exsv1beta1.StorageOperationFailedCondition)
		if st.lost.inStorage != nil {
			conditions.Set(obj, st.lost.inStorage)
		} else {
			conditions.MarkTrue(obj, exsv1beta1.ArtifactInStorageCondition, meta.SucceededReason, "stored artifact for revision '%s'", artifact.Revision)
		}
		ctrl.LoggerFrom(ctx).Info("stored the published artifact again", "revision", artifact.Revision)
		return nil
	}

	obj.Status.Artifact = artifact.DeepCopy()
	st.fetchResult = result
	recordFetchResult(obj, st)
	st.newArtifact = true
	if artifact.Size != nil {
		storage.RecordArtifact(*artifact.Size)
	}
	conditions.Delete(obj, exsv1beta1.StorageOperationFailedCondition)
	conditions.MarkTrue(obj, exsv1beta1.ArtifactInStorageCondition, meta.SucceededReason, "stored artifact for revision '%s'", artifact.Revision)

	return nil
}

// archiveInMemory is the largest archive built in memory; a larger one is
// spooled to a file. Ten workers hold at most ten such buffers.
const archiveInMemory = 1 << 20

// store puts the archive under the artifact's lock, then garbage-collects
// the object's older artifacts, keeping the previous one for in-flight
// downloads. A GC failure costs space, not correctness: logged, not fatal.
func (r *ExternalSourceReconciler) store(ctx context.Context, artifact *meta.Artifact, archive io.Reader) error {
	unlock, err := r.Storage.Lock(ctx, *artifact)
	if err != nil {
		return fmt.Errorf("locking artifact: %w", err)
	}
	defer unlock()
	if err := r.Storage.Put(ctx, artifact, archive); err != nil {
		return err
	}
	if deleted, err := r.Storage.GarbageCollect(ctx, *artifact, r.Retention); err != nil {
		storage.RecordError(storage.OperationGarbageCollect)
		ctrl.LoggerFrom(ctx).Error(err, "garbage collecting old artifacts")
	} else if len(deleted) > 0 {
		ctrl.LoggerFrom(ctx).V(1).Info("garbage collected old artifacts", "paths", deleted)
	}
	return nil
}

// writeArchive writes the deterministic tar.gz of what this reconcile
// publishes to w: the extracted files when spec.extract is set, the data
// otherwise.
func (r *ExternalSourceReconciler) writeArchive(obj *exsv1beta1.ExternalSource, st *reconcileState, w io.Writer) (archive.Result, error) {
	if st.extractDir != "" {
		return archive.WriteDir(w, obj.Spec.DestinationPath, st.extractDir)
	}
	data, err := os.Open(st.dataFile)
	if err != nil {
		return archive.Result{}, err
	}
	defer data.Close()
	return archive.Write(w, obj.Spec.DestinationPath, data, st.dataSize)
}
