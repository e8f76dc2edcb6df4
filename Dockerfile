# syntax=docker/dockerfile:1
# l1gw: a static binary on distroless, running as non-root.
# Build: make docker (or docker build --build-arg VERSION=$(git describe --always) -t l1gw .)

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/l1gw ./cmd/l1gw

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/l1gw /usr/local/bin/l1gw
# In a container the admin port must be reachable by the kubelet's probes.
# The environment outranks the config file: server.listen and
# server.admin_listen in a mounted config have no effect.
ENV L1GW_SERVER__LISTEN=":8080" \
    L1GW_SERVER__ADMIN_LISTEN=":9090"
EXPOSE 8080 9090
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/l1gw"]
CMD ["serve", "--config", "/etc/l1gw/l1gw.yaml"]
