# A small runtime image: the dbtool binary plus the project's migrations, seeds and profiles.
#   docker build -t dbtool .
#   docker run --rm -e DATABASE_URL=postgres://... dbtool reset --profile demo --yes
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 dbtool
COPY --from=build /src/target/release/dbtool /usr/local/bin/dbtool
WORKDIR /app
COPY migrations ./migrations
COPY seeds ./seeds
COPY profiles ./profiles
USER dbtool
ENTRYPOINT ["dbtool"]
CMD ["status"]
