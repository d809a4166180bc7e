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

package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is a container image built here without a container engine: one
// layer of Files on an empty base. The same inputs give the same digest.
type Image struct {
	// Name is the reference the image is imported as.
	Name string
	// Files are the layer's content; parent directories are added.
	Files []File
	// Entrypoint, Cmd, Env and User are the image's run configuration.
	Entrypoint, Cmd, Env []string
	User                 string
}

// File is one entry of an image's layer.
type File struct {
	// Path inside the image, without a leading slash.
	Path string
	Mode int64
	// Data is a regular file's content; Source, when set, names a host
	// file read instead.
	Data   []byte
	Source string
	// Dir and Link make a directory or a symbolic link to Link.
	Dir  bool
	Link string
}

var epoch = time.Unix(0, 0)

// layer writes the files as a tar with fixed times and owners, sorted, with
// every parent directory present.
func layer(files []File) ([]byte, error) {
	all := map[string]File{}
	for _, f := range files {
		p := strings.Trim(path.Clean("/"+f.Path), "/")
		if p == "" {
			continue
		}
		f.Path = p
		all[p] = f
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = File{Path: d, Dir: true, Mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		f := all[p]
		h := &tar.Header{Name: p, Mode: f.Mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			data := f.Data
			if f.Source != "" {
				b, err := os.ReadFile(f.Source)
				if err != nil {
					return nil, err
				}
				data = b
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build returns the image.
func (i Image) Build() (v1.Image, error) {
	data, err := layer(i.Files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", i.Name, err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint, cfg.Config.Cmd, cfg.Config.Env = i.Entrypoint, i.Cmd, i.Env
	cfg.Config.User, cfg.Config.WorkingDir = i.User, "/"
	return mutate.ConfigFile(img, cfg)
}

// WriteArchive writes the images as one docker-save archive, the format
// `ctr images import` reads with the names included.
func WriteArchive(file string, imgs ...Image) error {
	refs := map[name.Reference]v1.Image{}
	for _, i := range imgs {
		ref, err := name.ParseReference(i.Name)
		if err != nil {
			return err
		}
		img, err := i.Build()
		if err != nil {
			return err
		}
		refs[ref] = img
	}
	return tarball.MultiRefWriteToFile(file, refs)
}

// ImportImages builds the images and imports them into the node's
// containerd, where the kubelet finds them (imagePullPolicy IfNotPresent or
// Never: nothing is pulled).
func (c *Cluster) ImportImages(ctx context.Context, imgs ...Image) error {
	f, err := os.CreateTemp(c.Dir, "images-*.tar")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := WriteArchive(f.Name(), imgs...); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "ctr", "--address", c.ContainerdSocket, "-n", "k8s.io",
		"images", "import", f.Name()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import: %w: %s", err, out)
	}
	var names []string
	for _, i := range imgs {
		names = append(names, i.Name)
	}
	c.opts.Log("imported %s", strings.Join(names, ", "))
	return nil
}

// GoBinary builds a static binary of a package of this repository into
// dir and returns its path.
func GoBinary(root, dir, pkg, out string) (string, error) {
	p := filepath.Join(dir, out)
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, b)
	}
	return p, nil
}

// systemImages are the images the cluster itself runs: the pod sandbox's
// pause and CoreDNS.
func (c *Cluster) systemImages() ([]Image, error) {
	pause, err := GoBinary(c.opts.Root, c.Dir, "./hack/image/pause", "pause")
	if err != nil {
		return nil, err
	}
	return []Image{
		{Name: PauseImage, Files: []File{{Path: "pause", Mode: 0o755, Source: pause}},
			Entrypoint: []string{"/pause"}, User: "65535:65535"},
		{Name: CoreDNSImage, Files: []File{{Path: "coredns", Mode: 0o755, Source: c.bin("coredns")}},
			Entrypoint: []string{"/coredns"}, User: "65532:65532"},
	}, nil
}

// goEnv reads one `go env` value.
func goEnv(root, key string) (string, error) {
	cmd := exec.Command("go", "env", key)
	cmd.Dir = root
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}
