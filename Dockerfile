# syntax=docker/dockerfile:1
# Build the demo page bundle with npm + esbuild.
FROM node:20-bookworm-slim AS ui
WORKDIR /src
COPY package.json package-lock.json ./
COPY client client
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ui web/ui
COPY web/static web/static
RUN npm run build

# Build the static-ish Go binary with the bundle embedded.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=ui /src/web/static/dist web/static/dist
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/herald ./cmd/herald

# Runtime: the native converters, a non-root user, data under /data.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips-tools ffmpeg ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /data herald \
 && mkdir -p /data && chown herald /data
COPY --from=build /out/herald /usr/local/bin/herald
USER herald
WORKDIR /data
# adaptivestackstart=0: start goroutines small; the broker parks two per idle
# client, so this saves about 4 KiB per connection (docs/benchmarks.md).
ENV GODEBUG=adaptivestackstart=0 HERALD_DATA_DIR=/data HERALD_HTTP_ADDR=:8080 HERALD_LOCALAWS_ADDR=0.0.0.0:4566
# 8080: API, demo page, /mqtt. 4566: localaws (S3 + SQS), which browsers
# upload to in local mode. The MQTT TCP listener is off unless
# HERALD_MQTT_ADDR is set (then publish its port yourself, e.g. -p 1883:1883).
EXPOSE 8080 4566
VOLUME /data
# Ready means every part of the process is: /readyz (503 until then).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["herald", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "herald"]
CMD ["serve"]
