# citadel in a container: built from this checkout in a Rust image, run as a
# non-root user (uid 65532) from a distroless image: glibc and the binary,
# no shell, no package manager.
#
#   docker build -t citadel .
#   docker run --rm citadel --version
#   docker run --rm -v "$PWD:/data" citadel encrypt -R demo.pub -o msg.age msg.txt
#   docker run --rm -p 8200:8200 -v citadel-vault:/data citadel \
#     vault serve --config /data/citadel.toml    # listen on 0.0.0.0 needs TLS
#
# Not built by CI (its machines have no container daemon); a test checks
# this file's structure (crates/citadel-cli/tests/dockerfile.rs).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p citadel-cli \
 && install -D -m 0755 target/release/citadel /out/usr/local/bin/citadel \
 && install -d -m 0700 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/citadel /usr/local/bin/citadel
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
EXPOSE 8200 7443
ENTRYPOINT ["/usr/local/bin/citadel"]
CMD ["--help"]
