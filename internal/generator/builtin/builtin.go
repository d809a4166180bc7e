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

// Package builtin registers the generator types this controller ships. Adding
// a type is a new package under internal/generator and one line here.
package builtin

import (
	"errors"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/generator/release"
)

// Options configure the built-in generators.
type Options struct {
	HTTP httpgen.Options
	// Release configures the release generator; its Sender is the http
	// generator's.
	Release release.Options
}

// Register adds every built-in generator type to r.
func Register(r *generator.Registry, opts Options) error {
	h := httpgen.New(opts.HTTP)
	opts.Release.Sender = h.Sender()
	return errors.Join(
		r.Register(exsv1beta1.GeneratorTypeHTTP, h),
		r.Register(exsv1beta1.GeneratorTypeRelease, release.New(opts.Release)),
	)
}
