// Pins the flux CLI the end-to-end tests run (v2.9.5: the first with
// `flux get sources external`). hack/tools.sh builds it inside a copy of this
// module's source, since the released module lacks the manifests the CLI
// embeds and go install ignores its replace lines.
module github.com/externalsource/externalsource-controller/tests/tools/flux

go 1.26

require github.com/fluxcd/flux2/v2 v2.9.5
