# syntax=docker/dockerfile:1
#
# One image for all of Sluice on AWS: the four services (splitter, worker,
# merger, notifier) and the sluice CLI, each a static binary on PATH. The
# service is chosen by the command, so one build serves every ECS task
# definition and every docker-compose service:
#
#   docker build -t sluice:dev .            (or: make images)
#   docker run sluice:dev splitter          (likewise worker, merger, notifier)
#   docker run sluice:dev sluice provision  (the CLI)
#
# Each service listens on :9090 for /metrics, /healthz and /readyz
# (SLUICE_HTTP_ADDR). The final image has no shell, so it has no
# HEALTHCHECK: ECS and docker-compose check /healthz from outside, or not at
# all. pkg/composetest reads this file: keep the go build line naming every
# package it builds.

# The builder runs on the build machine's platform and cross-compiles, so a
# multi-arch build (docker buildx --platform linux/amd64,linux/arm64) needs
# no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/ ./services/splitter ./services/worker ./services/merger ./services/notifier ./services/deliverer ./cmd/sluice

# distroless/static has CA certificates (for AWS over TLS) and tzdata, no
# shell and no package manager; :nonroot runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
EXPOSE 9090
CMD ["sluice", "help"]
