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
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// stepFile is the file a step of the pipeline lives in: reconcileFetch in
// externalsource_fetch.go.
func stepFile(step string) string {
	return "externalsource_" + strings.ToLower(strings.TrimPrefix(step, "reconcile")) + ".go"
}

// TestStepsLiveInTheirOwnFiles reads the package's source: the step list in
// Reconcile names the files, each step lives in its own file, and nothing
// declared in a step's file is used by another file (the steps share
// reconcileState and the helper files, which never call back into a step).
// Only Reconcile names the steps.
func TestStepsLiveInTheirOwnFiles(t *testing.T) {
	g := NewWithT(t)
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	g.Expect(err).ToNot(HaveOccurred())
	files := map[string]*ast.File{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		g.Expect(err).ToNot(HaveOccurred())
		files[n] = f
	}

	// The steps, in order, as Reconcile lists them.
	var steps []string
	ast.Inspect(files["externalsource_controller.go"], func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		if at, ok := cl.Type.(*ast.ArrayType); !ok || identName(at.Elt) != "reconcileFunc" {
			return true
		}
		for _, e := range cl.Elts {
			steps = append(steps, e.(*ast.SelectorExpr).Sel.Name)
		}
		return false
	})
	g.Expect(steps).To(HaveLen(10), "the step list of Reconcile")

	// Where each top-level name is declared (methods by their name).
	declaredIn := map[string]string{}
	for n, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				declaredIn[d.Name.Name] = n
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						declaredIn[s.Name.Name] = n
					case *ast.ValueSpec:
						for _, id := range s.Names {
							declaredIn[id.Name] = n
						}
					}
				}
			}
		}
	}
	isStepFile := map[string]bool{}
	for _, s := range steps {
		g.Expect(declaredIn[s]).To(Equal(stepFile(s)), "step %s", s)
		isStepFile[stepFile(s)] = true
	}

	var crossings []string
	for n, f := range files {
		ast.Inspect(f, func(node ast.Node) bool {
			var id *ast.Ident
			switch x := node.(type) {
			case *ast.SelectorExpr:
				id = x.Sel
			case *ast.Ident:
				id = x
			default:
				return true
			}
			from := declaredIn[id.Name]
			if from == "" || from == n || !isStepFile[from] {
				return true
			}
			if n == "externalsource_controller.go" && stepFile(id.Name) == from {
				return true // Reconcile lists the steps
			}
			crossings = append(crossings, n+" uses "+id.Name+" of "+from)
			return true
		})
	}
	sort.Strings(crossings)
	g.Expect(crossings).To(BeEmpty(), "move what two files share into a helper file")

	// Test files mirror the source files of the steps.
	for f := range isStepFile {
		_, err := os.Stat(strings.TrimSuffix(f, ".go") + "_test.go")
		g.Expect(err).ToNot(HaveOccurred(), "the tests of %s", f)
	}
}

// identName names a type expression's identifier, or "".
func identName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
