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

# port_in_use says whether a TCP port is listened on, on any address of this network namespace.
port_in_use() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v port="$hex" 'FNR > 1 && $4 == "0A" { split($2, a, ":"); if (a[2] == port) found = 1 }
		END { exit !found }' /proc/net/tcp /proc/net/tcp6
}

# free_ports prints N distinct ports that nothing listens on, below the ephemeral range.
free_ports() {
	local -a ports=()
	local port
	while [ "${#ports[@]}" -lt "$1" ]; do
		port=$((20000 + RANDOM % 12000))
		if ! port_in_use "$port" && [[ " ${ports[*]} " != *" $port "* ]]; then
			ports+=("$port")
		fi
	done
	echo "${ports[@]}"
}

# running says whether pid is a live process of the fixture in dir: its command line names dir.
# A zombie has an empty command line, and a reused pid names another one.
running() {
	local cmdline
	cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
	[[ "$cmdline" == *"$2/"* ]]
}

launch() {
	local dir=$1 name=$2
	shift 2
	"$@" >"$dir/$name.log" 2>&1 </dev/null &
	echo "$name $!" >>"$dir/pids"
}

# alive says whether pid, a child this shell started, has not exited. Not `running`: between the
# fork and the exec a child's command line is still this script's, which names no DIR/.
alive() {
	local state
	state=$(sed -n 's/^.*) \(.\).*$/\1/p' 2>/dev/null <"/proc/$1/stat") || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# get_request PATH prints an HTTP/1.0 GET of PATH on 127.0.0.1.
get_request() {
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1"
}

# http_get PORT PATH prints the response of 127.0.0.1:PORT to a plain HTTP GET of PATH.
http_get() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		get_request "$2" >&3
		timeout 5 cat <&3
	)
}

# https_get PORT PATH does the same over TLS, without checking the server's certificate.
https_get() {
	get_request "$2" | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$1" 2>/dev/null
}

# dump_logs DIR prints the end of the log of every component started in DIR, so that a failure
# shows its cause wherever it began.
dump_logs() {
	local name pid state
	while read -r name pid; do
		state=exited
		if running "$pid" "$1"; then
			state=running
		fi
		log "the end of $1/$name.log (pid $pid, $state):"
		tail -n 20 "$1/$name.log" >&2 || true
	done <"$1/pids"
}

# start_component DIR NAME NPORTS TIMEOUT picks NPORTS free ports and runs the sourcing script's
# launch_NAME DIR PORTS..., then waits up to TIMEOUT seconds for its ready_NAME DIR PORTS...
# (NAME's dashes become underscores). A port taken between the pick and the bind is retried with
# other ports, up to three times. On failure it prints every component's log and returns 1.
start_component() {
	local dir=$1 name=$2 nports=$3 timeout=$4 fn=${2//-/_} attempt pid deadline start=$SECONDS
	local -a ports=()
	for attempt in 1 2 3; do
		if [ "$nports" -gt 0 ]; then
			read -r -a ports <<<"$(free_ports "$nports")"
		fi
		"launch_$fn" "$dir" "${ports[@]}"
		pid=$(awk -v name="$name" '$1 == name { pid = $2 } END { print pid }' "$dir/pids")
		deadline=$((SECONDS + timeout))
		until "ready_$fn" "$dir" "${ports[@]}" >/dev/null 2>&1; do
			if ! alive "$pid"; then
				if grep -qi 'address already in use' "$dir/$name.log"; then
					log "$name: a port was taken after it was picked (attempt $attempt); picking others"
					continue 2
				fi
				log "$name exited before it was ready"
				dump_logs "$dir"
				return 1
			fi
			if [ "$SECONDS" -ge "$deadline" ]; then
				log "$name not ready after ${timeout}s"
				dump_logs "$dir"
				return 1
			fi
			sleep 0.5
		done
		log "$name ready in $((SECONDS - start))s"
		return 0
	done
	log "$name: its ports were taken three times"
	dump_logs "$dir"
	return 1
}
