# The ateom-microvm worker image: the compiled binary on slim Debian with the tools the worker runs
# (mkfs.ext4 from e2fsprogs, ip/tc from iproute2, nft from nftables), like upstream's ateom base
# (debian:stable-slim). cloud-hypervisor and the kata guest kernel/image are not baked in: atelet
# fetches them per the SandboxConfig and passes their paths in each request.
#
#   docker build -t ateom-microvm .
#
# `deno compile` downloads its denort runtime; where that is not possible put denort (v2.9.6, same
# architecture) in the build context and pass --build-arg DENORT_BIN=/src/denort.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm make ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.setup-done
COPY . .
ARG DENORT_BIN
RUN if [ -n "${DENORT_BIN:-}" ]; then make binary; else env -u DENORT_BIN make binary; fi

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends e2fsprogs iproute2 nftables ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist/ateom-microvm /usr/local/bin/ateom-microvm
# The WorkerPool controller runs the image with only `--pod-uid=$(POD_UID)` as arguments; the
# base path defaults to /var/lib/ateom-gvisor, the hostPath it mounts.
ENTRYPOINT ["/usr/local/bin/ateom-microvm", "serve"]
