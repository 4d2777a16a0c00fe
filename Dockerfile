# The image built from source: the dbtool binary plus the project's migrations, seeds and profiles.
#   docker build --build-arg DBTOOL_COMMIT="$(git rev-parse HEAD)" -t dbtool:dev .
#   docker run --rm -e DATABASE_URL=postgres://... dbtool:dev reset --profile demo --yes
# The published image (Dockerfile.release, built by the release workflow) carries the static
# release binary instead; use it, with its version tag, unless you change dbtool itself.
# TLS goes through OpenSSL (as libpq's does): the build needs its headers, the image its shared
# library and the CA certificates that sslrootcert=system trusts.
FROM rust:1-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# .git is not in the build context: build.rs takes the commit for `dbtool --version` from here.
ARG DBTOOL_COMMIT=unknown
ENV DBTOOL_COMMIT=$DBTOOL_COMMIT
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dbtool \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app dbtool
COPY --from=build /src/target/release/dbtool /usr/local/bin/dbtool
WORKDIR /app
COPY migrations ./migrations
COPY seeds ./seeds
COPY profiles ./profiles
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENTRYPOINT ["dbtool"]
CMD ["status"]
