# sealwright as a container: one binary, run as non-root on a distroless base.
# Not built on the development machines (no container engine, no base images there); build it
# where Docker or Buildah runs:  docker build -t sealwright:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# libgit2 is vendored and OpenSSL linked statically (.cargo/config.toml): the binary needs
# glibc alone, which the cc base image has. Templates are embedded in the binary.
RUN cargo build --release --locked --bin sealwright

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/sealwright /usr/local/bin/sealwright
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sealwright"]
CMD ["serve", "--config", "/etc/sealwright/sealwright.yaml", "--data-dir", "/var/lib/sealwright"]
