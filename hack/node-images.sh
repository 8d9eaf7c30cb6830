#!/usr/bin/env bash
# What a real Kubernetes node of the tests (kubelet and containerd) runs besides them, built here
# since no registry can be reached: the pause image, a CoreDNS that serves cluster DNS, and images
# under the names the manifests use (components/images.go's defaults), each made from the Debian
# packages of this machine. So the images do NOT hold the versions their tags say: `list` says
# what they hold.
#
#   hack/node-images.sh build           build into the cache, unless it is built already
#   hack/node-images.sh dir             print the cache directory
#   hack/node-images.sh import ADDRESS  import every image into the containerd at socket ADDRESS,
#                                       namespace k8s.io (CONTAINERD_SNAPSHOTTER picks the
#                                       snapshotter to unpack them into), and check it lists them
#   hack/node-images.sh list            print one line per image: name, archive, what it holds
#                                       (tab-separated)
#
# The cache (REDIS_SENTINEL_NODE_IMAGES_CACHE, default /var/cache/redis-sentinel/node-images-KEY,
# KEY a digest of the stamp: the versions below, those of the Debian packages and the digest of
# the host files copied into the images) holds bin/coredns, images/*.tar (docker-archive tarballs,
# as `docker save` writes them and `ctr images import` reads them), images.list and the stamp;
# nothing of it belongs in the repository.
#
# The images:
#   pause          build/pause/linux/pause.c of Kubernetes, gcc -static: /pause, user 65535:65535
#   redis          redis-server (redis-sentinel, redis-check-* link to it), redis-cli and
#                  redis-benchmark in /usr/local/bin, a BusyBox userland as in Alpine; user redis
#                  999, group redis 1000, as in the official Alpine image; /data; no USER
#   haproxy        /usr/local/sbin/haproxy and BusyBox; USER haproxy (99:99), /var/lib/haproxy
#   redis_exporter /redis_exporter and the C library, no shell, as the official image (FROM
#                  scratch); USER 59000:59000. No /etc/hosts either: the kubelet mounts one
#                  (without it, localhost does not resolve)
# Programs keep the shared libraries ldd finds on this machine, at the same paths. Every file has
# mtime 0 and the entries are sorted, so the same inputs give the same image digests.
set -euo pipefail

# shellcheck source=hack/lib.sh
. "$(dirname "$0")/lib.sh"

repo=$(cd "$(dirname "$0")/.." && pwd -P)
kube_version=v1.36.4
# build/pause/Makefile's TAG in $kube_version (kubeadm's PauseVersion); the build checks it.
pause_tag=3.10.2
coredns_version=v1.14.7
# The CoreDNS plugins, DIRECTIVE or DIRECTIVE:PACKAGE (github.com/coredns/coredns/plugin/PACKAGE,
# PACKAGE the directive when not given). They run in the order of CoreDNS's own list, whatever the
# order here. bind keeps it off addresses the fixture does not choose; prometheus costs nothing:
# the others import its package already.
coredns_plugins=(bind errors log health ready prometheus:metrics cache loadbalance kubernetes)
# The Debian packages the images and the pause binary are made of.
packages=(busybox-static redis-tools haproxy prometheus-redis-exporter libc6 libc6-dev gcc-12)
# The host programs copied into the images (with their shared libraries).
busybox=/bin/busybox
redis_server=/usr/bin/redis-check-rdb # redis-server and redis-sentinel link to it
redis_cli=/usr/bin/redis-cli
redis_benchmark=/usr/bin/redis-benchmark
haproxy=/usr/sbin/haproxy
redis_exporter=/usr/bin/prometheus-redis-exporter
# Bump when the script changes what the images hold: the cache key follows.
layout=1
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() {
	echo "usage: $0 build | dir | import ADDRESS | list" >&2
	exit 2
}

# default_image NAME prints components/images.go's image default NAME.
default_image() {
	local image
	image=$(sed -n "s/^\t$1 *= *\"\(.*\)\"\$/\1/p" "$repo/components/images.go")
	[ -n "$image" ] || fail "found no $1 in $repo/components/images.go"
	echo "$image"
}

pause_image=registry.k8s.io/pause:$pause_tag
redis_image=$(default_image DefaultRedisImage)
haproxy_image=$(default_image DefaultHAProxyImage)
exporter_image=$(default_image DefaultMetricsImage)

# version PACKAGE prints the version of an installed Debian package.
version() {
	local status
	status=$(dpkg-query -W -f '${db:Status-Status} ${Version}' "$1" 2>/dev/null) || status=
	[[ "$status" == "installed "* ]] || fail "Debian package $1 is not installed (apt-get install ${packages[*]})"
	echo "${status#installed }"
}

# upstream VERSION prints a Debian version without its epoch and revision.
upstream() {
	local v=${1#*:}
	echo "${v%-*}"
}

# libraries PROGRAM prints the shared libraries (with the dynamic loader) that PROGRAM loads,
# as ldd finds them on this machine.
libraries() {
	local out
	out=$(ldd "$1") || fail "ldd $1 failed"
	! grep -q 'not found' <<<"$out" || fail "$1 misses shared libraries: $out"
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# inputs prints every host file the images are made of.
inputs() {
	local program
	echo "$busybox"
	for program in "$redis_server" "$redis_cli" "$redis_benchmark" "$haproxy" "$redis_exporter"; do
		echo "$program"
		libraries "$program"
	done
}

declare -A versions=()
for package in "${packages[@]}"; do
	versions[$package]=$(version "$package")
done
for program in "$busybox" "$redis_server" "$redis_cli" "$redis_benchmark" "$haproxy" "$redis_exporter"; do
	[ -x "$program" ] || fail "$program is missing (apt-get install ${packages[*]})"
done
inputs_digest=$(inputs | LC_ALL=C sort -u | xargs sha256sum | sha256sum | cut -d' ' -f1)
stamp="layout $layout kubernetes $kube_version pause $pause_tag coredns $coredns_version"
stamp+=" (${coredns_plugins[*]}) $(go env GOVERSION)"
stamp+=" images $pause_image $redis_image $haproxy_image $exporter_image debian"
for package in "${packages[@]}"; do
	stamp+=" $package=${versions[$package]}"
done
stamp+=" files sha256:$inputs_digest"
key=$(echo "$stamp" | sha256sum | cut -c1-16)
cache=${REDIS_SENTINEL_NODE_IMAGES_CACHE:-/var/cache/redis-sentinel/node-images-$key}
bin=$cache/bin
images=$cache/images
names=(pause redis haproxy redis_exporter)

built() {
	[ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ] && [ -x "$bin/coredns" ] && [ -f "$cache/images.list" ] || return 1
	local name
	for name in "${names[@]}"; do
		[ -f "$images/$name.tar" ] || return 1
	done
}

# install_program ROOT PROGRAM DEST copies PROGRAM to ROOT/DEST and the shared libraries it
# loads to the same paths under ROOT.
install_program() {
	local root=$1 program=$2 dest=$3 lib
	install -D -m 755 "$program" "$root$dest"
	while read -r lib; do
		if [ ! -e "$root$lib" ]; then
			install -D -m "$(stat -L -c %a "$lib")" "$lib" "$root$lib"
		fi
	done < <(libraries "$program")
}

# put ROOT PATH MODE writes its standard input to the file ROOT/PATH.
put() {
	install -d -m 755 "$(dirname "$1$2")"
	cat >"$1$2"
	chmod "$3" "$1$2"
}

# alpine_root ROOT makes the skeleton of an Alpine-like root filesystem in ROOT: BusyBox and its
# applets where Debian's busybox puts them (sh, awk, sed, timeout, cat, grep, ...), the usual
# directories, /etc/hosts and nsswitch.conf (the programs use glibc's resolver: files first).
alpine_root() {
	local root=$1 applet dir
	for dir in bin dev etc home lib proc root run sbin sys tmp usr/bin usr/local/bin usr/local/sbin \
		usr/sbin var/cache var/empty var/lib var/log var/spool var/tmp; do
		install -d -m 755 "$root/$dir"
	done
	chmod 700 "$root/root"
	chmod 1777 "$root/tmp" "$root/var/tmp"
	ln -s /run "$root/var/run"
	install -m 755 "$busybox" "$root/bin/busybox"
	while read -r applet; do
		[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
	done < <("$busybox" --list-full)
	[ -L "$root/bin/sh" ] || fail "busybox has no sh"
	printf '127.0.0.1\tlocalhost localhost.localdomain\n::1\t\tlocalhost localhost.localdomain\n' |
		put "$root" /etc/hosts 644
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' | put "$root" /etc/nsswitch.conf 644
}

# users ROOT PASSWD GROUP writes /etc/passwd and /etc/group with root, nobody and the lines given.
users() {
	printf 'root:x:0:0:root:/root:/bin/sh\n%s\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n' "$2" |
		put "$1" /etc/passwd 644
	printf 'root:x:0:root\n%s\nnobody:x:65534:\n' "$3" | put "$1" /etc/group 644
}

tar_flags=(--format=gnu --numeric-owner --mtime=@0 --no-recursion --no-acls --no-selinux --no-xattrs)

# layer ROOT OUT [PATH:UID:GID]... writes the layer tarball of ROOT: sorted entries, mtime 0, all
# owned by root but each PATH (an empty directory), which is appended with its owner.
layer() {
	local root=$1 out=$2 entry path uid gid
	shift 2
	local -a owned=("$@")
	(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$out.entries"
	for entry in "${owned[@]}"; do
		grep -vxF "${entry%%:*}" "$out.entries" >"$out.rest" || true
		mv "$out.rest" "$out.entries"
	done
	tar -C "$root" "${tar_flags[@]}" --owner=0 --group=0 --verbatim-files-from -T "$out.entries" -cf "$out"
	for entry in "${owned[@]}"; do
		IFS=: read -r path uid gid <<<"$entry"
		if [ ! -d "$root/$path" ] || [ -n "$(ls -A "$root/$path")" ]; then
			fail "$root/$path is no empty directory"
		fi
		tar -C "$root" "${tar_flags[@]}" --owner="$uid" --group="$gid" -rf "$out" "$path"
	done
	rm "$out.entries"
}

# image NAME ARCHIVE ROOT CONFIG [PATH:UID:GID]... writes ARCHIVE, the docker-archive of the
# one-layer image NAME: ROOT's files, and CONFIG, the JSON of the image config's "config".
image() {
	local name=$1 archive=$2 root=$3 config=$4 dir layer_id config_id
	shift 4
	dir=$(mktemp -d "$work/archive.XXXXXX")
	layer "$root" "$dir/layer.tar" "$@"
	layer_id=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
	install -d -m 755 "$dir/$layer_id"
	mv "$dir/layer.tar" "$dir/$layer_id/layer.tar"
	printf '{"architecture":"amd64","config":%s,"created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/node-images.sh"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$config" "$layer_id" >"$dir/config.json"
	config_id=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
	mv "$dir/config.json" "$dir/$config_id.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
		"$config_id" "$name" "$layer_id" >"$dir/manifest.json"
	chmod 644 "$dir/manifest.json" "$dir/$config_id.json" "$dir/$layer_id/layer.tar"
	tar -C "$dir" "${tar_flags[@]}" --owner=0 --group=0 -cf "$archive.new" \
		"$config_id.json" "$layer_id" "$layer_id/layer.tar" manifest.json
	mv "$archive.new" "$archive"
	rm -r "$dir"
}

# labels DESCRIPTION prints the image config's Labels.
labels() {
	printf '"Labels":{"org.opencontainers.image.description":"%s","org.opencontainers.image.source":"hack/node-images.sh"}' "$1"
}

build_pause() {
	local kube_src=$1 root=$work/pause
	grep -qx "TAG ?= $pause_tag" "$kube_src/build/pause/Makefile" ||
		fail "build/pause/Makefile of kubernetes $kube_version does not say TAG ?= $pause_tag"
	install -d -m 755 "$root"
	# As build/pause/Makefile builds it (REV, `git describe`, is the Kubernetes version here).
	gcc -Os -Wall -Werror -static "-DVERSION=v$pause_tag-$kube_version" -o "$root/pause" \
		"$kube_src/build/pause/linux/pause.c"
	strip "$root/pause"
	chmod 755 "$root/pause"
	description[pause]="pause.c of kubernetes $kube_version (pause $pause_tag), gcc -static (gcc-12 ${versions[gcc-12]}, libc6-dev ${versions[libc6-dev]}); /pause; USER 65535:65535"
	image "$pause_image" "$images/pause.tar" "$root" \
		"{\"User\":\"65535:65535\",\"Entrypoint\":[\"/pause\"],$(labels "${description[pause]}")}"
}

build_redis() {
	local root=$work/redis link
	alpine_root "$root"
	users "$root" 'redis:x:999:1000:redis:/home/redis:/usr/sbin/nologin' 'redis:x:1000:redis'
	install_program "$root" "$redis_server" /usr/local/bin/redis-server
	for link in redis-sentinel redis-check-aof redis-check-rdb; do
		ln -s redis-server "$root/usr/local/bin/$link"
	done
	install_program "$root" "$redis_cli" /usr/local/bin/redis-cli
	install_program "$root" "$redis_benchmark" /usr/local/bin/redis-benchmark
	install -d -m 755 "$root/data"
	local redis busybox_version
	redis=$(upstream "${versions[redis-tools]}")
	busybox_version=$(upstream "${versions[busybox-static]}")
	description[redis]="redis $redis (Debian redis-tools ${versions[redis-tools]}): /usr/local/bin/redis-server (redis-sentinel, redis-check-aof, redis-check-rdb link to it), redis-cli, redis-benchmark; busybox $busybox_version (Debian busybox-static ${versions[busybox-static]}); users root 0, redis 999 (group redis 1000), /data owned by 999:1000; no USER, WORKDIR /data"
	image "$redis_image" "$images/redis.tar" "$root" \
		"{\"ExposedPorts\":{\"6379/tcp\":{}},\"Env\":[\"$path_env\",\"REDIS_VERSION=$redis\"],\"Cmd\":[\"redis-server\"],\"Volumes\":{\"/data\":{}},\"WorkingDir\":\"/data\",$(labels "${description[redis]}")}" \
		data:999:1000
}

build_haproxy() {
	local root=$work/haproxy
	alpine_root "$root"
	users "$root" 'haproxy:x:99:99:haproxy:/var/lib/haproxy:/usr/sbin/nologin' 'haproxy:x:99:haproxy'
	install_program "$root" "$haproxy" /usr/local/sbin/haproxy
	install -d -m 755 "$root/usr/local/etc/haproxy" "$root/var/lib/haproxy"
	local version busybox_version
	version=$(upstream "${versions[haproxy]}")
	busybox_version=$(upstream "${versions[busybox-static]}")
	description[haproxy]="haproxy $version (Debian haproxy ${versions[haproxy]}): /usr/local/sbin/haproxy; busybox $busybox_version (Debian busybox-static ${versions[busybox-static]}); users root 0, haproxy 99 (group haproxy 99); USER haproxy, WORKDIR /var/lib/haproxy (owned by 99:99)"
	image "$haproxy_image" "$images/haproxy.tar" "$root" \
		"{\"User\":\"haproxy\",\"Env\":[\"$path_env\",\"HAPROXY_VERSION=$version\"],\"Cmd\":[\"haproxy\",\"-f\",\"/usr/local/etc/haproxy/haproxy.cfg\"],\"WorkingDir\":\"/var/lib/haproxy\",\"StopSignal\":\"SIGUSR1\",$(labels "${description[haproxy]}")}" \
		var/lib/haproxy:99:99
}

build_exporter() {
	local root=$work/redis_exporter
	install -d -m 755 "$root"
	install_program "$root" "$redis_exporter" /redis_exporter
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' | put "$root" /etc/nsswitch.conf 644
	local version
	version=$(upstream "${versions[prometheus-redis-exporter]}")
	description[redis_exporter]="redis_exporter $version (Debian prometheus-redis-exporter ${versions[prometheus-redis-exporter]}): /redis_exporter with glibc (libc6 ${versions[libc6]}), /etc/nsswitch.conf, no shell; USER 59000:59000"
	image "$exporter_image" "$images/redis_exporter.tar" "$root" \
		"{\"User\":\"59000:59000\",\"ExposedPorts\":{\"9121/tcp\":{}},\"Env\":[\"$path_env\"],\"Entrypoint\":[\"/redis_exporter\"],$(labels "${description[redis_exporter]}")}"
}

# coredns_module SRC DIR writes the wrapper module of a CoreDNS with only coredns_plugins, in the
# order of CoreDNS's own directives (core/dnsserver/zdirectives.go): the order a query sees them in.
coredns_module() {
	local src=$1 dir=$2 directive plugin
	local -a order=()
	while read -r directive; do
		for plugin in "${coredns_plugins[@]}"; do
			if [ "${plugin%%:*}" = "$directive" ]; then
				order+=("$plugin")
			fi
		done
	done < <(sed -n 's/^\t"\([a-z0-9_]*\)",$/\1/p' "$src/core/dnsserver/zdirectives.go")
	[ "${#order[@]}" -eq "${#coredns_plugins[@]}" ] ||
		fail "CoreDNS $coredns_version's directives lack some of: ${coredns_plugins[*]}"
	mkdir -p "$dir"
	{
		echo "module redis-sentinel.local/coredns-fixture"
		echo
		grep -E '^(go|godebug) ' "$src/go.mod"
		echo
		echo "require github.com/coredns/coredns $coredns_version"
	} >"$dir/go.mod"
	{
		echo "// Command coredns is CoreDNS with only the plugins that serve cluster DNS."
		echo "package main"
		echo
		echo "import ("
		echo "	\"github.com/coredns/coredns/core/dnsserver\""
		echo "	\"github.com/coredns/coredns/coremain\""
		echo
		for plugin in "${order[@]}"; do
			echo "	_ \"github.com/coredns/coredns/plugin/${plugin#*:}\""
		done
		echo ")"
		echo
		echo "func main() {"
		echo "	dnsserver.Directives = []string{"
		for plugin in "${order[@]}"; do
			echo "		\"${plugin%%:*}\","
		done
		echo "	}"
		echo "	coremain.Run()"
		echo "}"
	} >"$dir/main.go"
}

# build_binaries is build_cached's (hack/lib.sh) step.
build_binaries() {
	local start=$SECONDS
	umask 022
	work=$cache/work
	rm -rf "$work"
	mkdir -p "$bin" "$images" "$work"
	declare -gA description=()

	local kube_src
	kube_src=$(module_dir "k8s.io/kubernetes@$kube_version")
	build_pause "$kube_src"
	build_redis
	build_haproxy
	build_exporter
	{
		printf '%s\t%s\t%s\n' "$pause_image" "$images/pause.tar" "${description[pause]}"
		printf '%s\t%s\t%s\n' "$redis_image" "$images/redis.tar" "${description[redis]}"
		printf '%s\t%s\t%s\n' "$haproxy_image" "$images/haproxy.tar" "${description[haproxy]}"
		printf '%s\t%s\t%s\n' "$exporter_image" "$images/redis_exporter.tar" "${description[redis_exporter]}"
	} >"$cache/images.list"
	rm -rf "$work"
	log "images built: $((SECONDS - start))s"

	local coredns_src
	coredns_src=$(module_dir "github.com/coredns/coredns@$coredns_version")
	coredns_module "$coredns_src" "$cache/coredns-module"
	go_build "$cache/coredns-module" -o "$bin/coredns" .
	log "coredns built: $((SECONDS - start))s"
}

list() {
	built || fail "not built in $cache: run $0 build first"
	cat "$cache/images.list"
}

import() {
	local address=$1 name archive listed
	built || fail "not built in $cache: run $0 build first"
	[ -S "$address" ] || fail "$address is not a socket"
	local -a ctr=(ctr --address "$address" --namespace k8s.io)
	while IFS=$'\t' read -r name archive _; do
		"${ctr[@]}" images import "$archive" </dev/null >&2 || fail "could not import $archive into $address"
	done <"$cache/images.list"
	listed=$("${ctr[@]}" images list --quiet)
	while IFS=$'\t' read -r name archive _; do
		grep -qxF "$name" <<<"$listed" || fail "$name is not listed by the containerd at $address after the import"
		log "imported $name"
	done <"$cache/images.list"
}

case "${1:-}" in
build)
	[ $# -eq 1 ] || usage
	build_cached "$cache" "$stamp"
	;;
dir)
	[ $# -eq 1 ] || usage
	echo "$cache"
	;;
import)
	[ $# -eq 2 ] || usage
	import "$2"
	;;
list)
	[ $# -eq 1 ] || usage
	list
	;;
*)
	usage
	;;
esac
