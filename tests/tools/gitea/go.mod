// Pins the Gitea server the release generator's real-server tests run
// (tests/release). v1.27.3 is the newest release the module proxy serves; its
// go.mod declares the module gitea.dev, so it cannot be built as a dependency:
// hack/tools.sh builds it inside a copy of its own source (with its replace
// lines), its options and templates embedded (bindata, no frontend build:
// the tests use the API only). SQLite is its default pure-Go driver (modernc).
module github.com/externalsource/externalsource-controller/tests/tools/gitea

go 1.26

require code.gitea.io/gitea v1.27.3
