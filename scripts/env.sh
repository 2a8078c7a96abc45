# Sourced by the scripts: the build cache. sccache, when installed by setup-tools, keeps compiled
# dependencies in ~/.cache/tapctl-sccache (outside the clone) so a fresh clone builds in about a
# minute instead of eight.
if [ -x "$PWD/.tools/venv/bin/sccache" ] && [ -z "${RUSTC_WRAPPER:-}" ]; then
  export RUSTC_WRAPPER="$PWD/.tools/venv/bin/sccache"
  export SCCACHE_DIR="${SCCACHE_DIR:-$HOME/.cache/tapctl-sccache}"
  export SCCACHE_CACHE_SIZE="${SCCACHE_CACHE_SIZE:-20G}"
fi
