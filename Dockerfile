# syntax=docker/dockerfile:1
#
# The muttd image: one binary for every role.
#
#   docker build --build-arg MUTT_GIT_COMMIT=$(git rev-parse --short HEAD) -t muttd:0.1.0 .
#   docker run -p 8080:8080 -p 8090:8090 -v mutt-data:/var/lib/mutt muttd:0.1.0
#
# With no Redis or PostgreSQL configured, `muttd run` (the default command) keeps everything in
# the embedded data file in the /var/lib/mutt volume and generates its API keys there. For
# production run one role per container (`muttd ingestor|alerter|forwarder|web`, `muttd migrate`
# once) against Redis and PostgreSQL: deploy/compose.yaml and deploy/k8s/.
# crates/muttd/tests/deploy_manifests.rs checks this file's ports, command and variables
# against what muttd reads and serves.

FROM rust:1-bookworm AS builder
# build.rs puts it into `muttd --version`; .git is not in the build context.
ARG MUTT_GIT_COMMIT=unknown
WORKDIR /src
COPY . .
# The target directory is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked -p muttd \
    && install -m 0755 target/dist/muttd /usr/local/bin/muttd

# muttd links only libc, libm and libgcc_s (TLS is rustls, SQLite is bundled); ca-certificates
# for rustls's system roots (rediss://, an https webhook); bash for the health check.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mutt \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mutt --shell /usr/sbin/nologin mutt \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/mutt
COPY --from=builder /usr/local/bin/muttd /usr/local/bin/muttd
COPY --chmod=0755 deploy/container/muttd-healthcheck /usr/local/bin/muttd-healthcheck

# Listen on every interface of the container (muttd's default is 127.0.0.1), and keep the
# embedded data file, the alerts file and generated API keys in the volume.
ENV MUTT_BIND_ADDRESS=0.0.0.0 \
    MUTT_DATA_DIR=/var/lib/mutt
WORKDIR /var/lib/mutt
VOLUME ["/var/lib/mutt"]
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001

# ingestor, alerter (/metrics and probes), forwarder (/metrics and probes), web.
EXPOSE 8080 8081 8083 8090

# GET /health on every role port that listens in the container (bash's /dev/tcp: no curl here).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/muttd-healthcheck"]

# SIGTERM: muttd hands its leased batches back to the queues and exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/muttd"]
CMD ["run"]
