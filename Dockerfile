# syntax=docker/dockerfile:1
# One image for every target: `docker run glimpse` runs `glimpse all` (the default CMD), and
# the fleet runs the same image with `gateway`, `collector`, `processor`, `query` or `migrate`
# as its command (deploy/compose/docker-compose.yml). Build with
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t glimpse .

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/glimpse ./cmd/glimpse
# The data directory of `glimpse all`, owned by the distroless nonroot user (65532), so that a
# fresh volume mounted there is writable.
RUN mkdir -p /out/data && chown 65532:65532 /out/data

# distroless/static: CA certificates, /etc/passwd with a nonroot user, tzdata; no shell. The
# container healthcheck therefore uses `glimpse healthcheck`, not curl.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/glimpse /glimpse
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /
# `glimpse all` keeps its embedded bus and store here; the fleet targets keep nothing locally.
ENV GLIMPSE_DATA_DIR=/data
VOLUME ["/data"]
# 8080: all and gateway; 8081: collector; 8082: query; 8083: processor (/metrics and probes).
EXPOSE 8080 8081 8082 8083
# No HEALTHCHECK here: its port depends on the target. Give one per service in exec form
# (there is no shell for `docker run --health-cmd`), as the compose file does:
#   test: ["CMD", "/glimpse", "healthcheck", "--url=http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/glimpse"]
CMD ["all"]
