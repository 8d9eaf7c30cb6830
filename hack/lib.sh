# shellcheck shell=bash
# What the fixture scripts share. Source it; it logs under the sourcing script's name.

log() {
	echo "$(basename "$0" .sh): $*" >&2
}

fail() {
	log "$*"
	exit 1
}

# module_dir MODULE@VERSION downloads a module into Go's module cache and prints its directory.
module_dir() {
	local dir
	dir=$(GOWORK=off go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] || fail "go mod download $1 gave no directory"
	echo "$dir"
}

# go_build DIR ARGS... runs `go build` in the wrapper module DIR. -mod=mod completes its go.mod
# and go.sum from the module proxy (checked by the checksum database); static binaries.
go_build() {
	local dir=$1
	shift
	(cd "$dir" && GOWORK=off CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" go build -trimpath "$@")
}

# build_cached CACHE STAMP builds into CACHE once: unless the sourcing script's `built` finds what
# STAMP names there, it runs the script's `build_binaries`, then writes the stamp `built` reads.
build_cached() {
	local cache=$1 stamp=$2 start=$SECONDS
	if built; then
		log "already built in $cache ($stamp): $((SECONDS - start))s"
		return
	fi
	log "building $stamp into $cache"
	rm -f "$cache/stamp"
	build_binaries
	echo "$stamp" >"$cache/stamp"
	log "built in $((SECONDS - start))s"
}
