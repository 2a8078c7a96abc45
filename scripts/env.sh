# Sourced by the scripts: where the build and the tools are kept between runs.
#
# Everything that is slow to make lives outside the clone, under one cache folder shared by every
# checkout on this machine (TAPCTL_CACHE, default ~/.cache/tapctl):
#   build/  Cargo's build directory (build.build-dir): compiled dependencies, build-script output
#           and incremental state, for every profile and target. A fresh clone compiles only the
#           workspace's own crates; its final binaries still land in its own target/.
#   tools/  the Python virtualenv of scripts/setup-tools (moto, ziglang, cargo-zigbuild); the
#           clone's .tools is a link to it.
# `rm -rf ~/.cache/tapctl` returns the machine to cold; nothing in it is needed for correctness.
export TAPCTL_CACHE="${TAPCTL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tapctl}"
export CARGO_BUILD_BUILD_DIR="${CARGO_BUILD_BUILD_DIR:-$TAPCTL_CACHE/build}"

# Cargo decides whether a workspace crate is fresh from file times, and the workspace's crates
# have the same artifact names in every checkout. So when another checkout built last, its
# artifacts may be newer than this checkout's files while their content differs: make this
# checkout's files newer than anything built so far, so that its own crates are recompiled.
# (The dependencies, from the registry, are identified by version and stay cached.)
tapctl_claim_build_dir() {
  local marker="$CARGO_BUILD_BUILD_DIR/.checkout"
  if [ "$(cat "$marker" 2>/dev/null)" != "$PWD" ]; then
    git ls-files -z 2>/dev/null | xargs -0 -r touch -c --
    mkdir -p "$CARGO_BUILD_BUILD_DIR" && printf '%s\n' "$PWD" >"$marker"
  fi
}
tapctl_claim_build_dir
