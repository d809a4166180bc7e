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
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestSandboxOtherABIs: on amd64 a process can also make i386 calls
// (int 0x80) and x32 calls (bit 30 of the number), whose numbers mean
// other calls than the filter's: the filter refuses every call of another
// ABI. Without the sandbox, the control, the i386 call is served where
// the kernel has i386 emulation (most distributions' kernels), and faults
// where it has not (the probe says so: the kernel refuses the call before
// any filter sees it, so the sandboxed run can only fault the same way);
// x32 is served or unknown (most kernels are built without it), never
// refused with EPERM.
func TestSandboxOtherABIs(t *testing.T) {
	for _, abi := range []string{"i386", "x32"} {
		t.Run(abi, func(t *testing.T) {
			g := NewWithT(t)
			h := exsv1beta1.Hook{Name: "abi", Command: "probe", Args: []string{abi}}
			out, err := newSandboxRig(t, SandboxNone, false).run(h, "")
			noI386 := abi == "i386" && strings.Contains(errText(err), "no i386 emulation")
			switch {
			case abi == "i386" && !noI386:
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(out).To(Equal("called\n"))
			default:
				g.Expect(errText(err)).ToNot(ContainSubstring("operation not permitted"))
			}

			_, err = newSandboxRig(t, SandboxLandlock, false).run(h, "")
			if noI386 {
				t.Log("this kernel has no i386 emulation: int 0x80 faults before the filter")
				g.Expect(errText(err)).To(ContainSubstring("no i386 emulation"))
				return
			}
			g.Expect(errText(err)).To(ContainSubstring("operation not permitted"))
		})
	}
}
