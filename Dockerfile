# syntax=docker/dockerfile:1
# demo-app: one image for every role (--role frontend|backend|all).
#
#   docker build --build-arg DEMO_APP_REVISION="$(git rev-parse HEAD)" -t demo-app:0.1.0 .
#
# The binary is built for the glibc target (x86_64/aarch64-unknown-linux-gnu):
# SQLite (bundled by sqlx) and ring are C code, and glibc needs no cross
# toolchain. It links only libc and libgcc_s, so the runtime image is
# distroless "cc" (glibc + libgcc, no shell, no package manager), from the
# same Debian release as the builder. The release profile keeps symbols (the
# code layout of build.rs needs it); `install -s` strips the image's copy.
# The compiler is pinned to the patch release: its version is hashed into
# every symbol name, and crates/demo-app/hot-functions.txt names symbols.

FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
# Stamped into /api/info and /version by build.rs; "unknown" when not given.
ARG DEMO_APP_REVISION=unknown
ENV DEMO_APP_REVISION=${DEMO_APP_REVISION}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p demo-app \
    && install -D -s -m 0755 target/release/demo-app /out/root/usr/local/bin/demo-app \
    && ln -s demo-app /out/root/usr/local/bin/podcli \
    && install -d /out/root/home/app \
    && ln -s /usr/local/bin/demo-app /out/root/home/app/podinfo \
    && install -d -m 0750 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/example/demo-platform" \
      org.opencontainers.image.title="demo-app" \
      org.opencontainers.image.description="podinfo-compatible workload with an orders API on SQLite or PostgreSQL" \
      org.opencontainers.image.licenses="Apache-2.0"
# podinfo's chart runs `./podinfo` from /home/app and probes with `podcli`:
# both names are this binary (it answers as podcli under that name).
COPY --from=builder /out/root/ /
WORKDIR /home/app
# Default --data-path, writable by the runtime user when no volume is mounted
# (Kubernetes mounts an emptyDir or a PVC there).
COPY --from=builder --chown=65532:65532 /out/data /data
USER 65532:65532
# 9898: API and UI (--port); 9797: metrics and /healthz (--port-metrics).
EXPOSE 9898 9797
ENTRYPOINT ["/usr/local/bin/demo-app"]
