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

package storage

import (
	"fmt"
	"io"

	godigest "github.com/opencontainers/go-digest"

	"github.com/fluxcd/pkg/artifact/digest"

	"github.com/externalsource/externalsource-controller/internal/iobuf"
)

// NewDigester returns the digester a backend hashes stored bytes with:
// of expected's algorithm when the caller gave a digest to check, so a
// digest is always compared with one of its own kind, and otherwise of
// Flux's canonical algorithm (digest.Canonical, which main sets from
// --artifact-digest-algo), so every backend honours the flag.
func NewDigester(expected string) (godigest.Digester, error) {
	if expected == "" {
		return digest.Canonical.Digester(), nil
	}
	d, err := godigest.Parse(expected)
	if err != nil {
		return nil, fmt.Errorf("expected digest %q: %w", expected, err)
	}
	return d.Algorithm().Digester(), nil
}

// VerifyReader reads r to its end and returns ErrDigestMismatch (wrapped)
// when the bytes do not have digest want. Backends that hash what they
// would serve (memory, filesystem) share it, so a mismatch is recognised
// by its type whatever the backend, never by an error's text.
func VerifyReader(r io.Reader, want string) error {
	d, err := godigest.Parse(want)
	if err != nil {
		return fmt.Errorf("artifact digest %q: %w: %w", want, err, ErrDigestMismatch)
	}
	h := d.Algorithm().Digester()
	if _, err := iobuf.Copy(h.Hash(), r); err != nil {
		return err
	}
	if got := h.Digest(); got != d {
		return fmt.Errorf("stored bytes have digest %s, expected %s: %w", got, d, ErrDigestMismatch)
	}
	return nil
}
