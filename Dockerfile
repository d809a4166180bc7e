# The controller: a static binary on distroless, non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY api/go.mod api/go.sum api/
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/externalsource-controller .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/externalsource-controller /usr/local/bin/externalsource-controller
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/externalsource-controller"]
