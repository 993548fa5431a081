# syntax=docker/dockerfile:1
#
# The hubbub image: a release build of the `hubbub` binary on a slim Debian
# base, run as an unprivileged user, configured by HUBBUB_* variables.
#
#   docker build -t hubbub .
#   docker run -p 8080:8080 -e HUBBUB_AUTH__JWT_SECRET=... hubbub
#
# tests/tests/entrypoint.rs reads the ENV, ENTRYPOINT, CMD and HEALTHCHECK
# lines of this file and runs the binary exactly that way: keep one
# instruction per line, exec (JSON array) form, one KEY=VALUE per ENV line.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hubbub --bin hubbub \
    && install -D -m 0755 target/release/hubbub /out/hubbub

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN groupadd --system --gid 10001 hubbub \
    && useradd --system --uid 10001 --gid hubbub --home-dir /home/hubbub --create-home --shell /usr/sbin/nologin hubbub
COPY --from=build /out/hubbub /usr/local/bin/hubbub
COPY docker/hubbub.toml /etc/hubbub/hubbub.toml
ENV HUBBUB_CONFIG=/etc/hubbub/hubbub.toml
ENV HUBBUB_LISTEN=0.0.0.0:8080
ENV HUBBUB_LOG_FORMAT=json
ENV HUBBUB_LOG=info
USER hubbub:hubbub
WORKDIR /home/hubbub
EXPOSE 8080
STOPSIGNAL SIGTERM
# No curl in the slim image: bash's /dev/tcp speaks just enough HTTP.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${HUBBUB_LISTEN##*:}\" && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["/usr/local/bin/hubbub"]
CMD ["serve"]
