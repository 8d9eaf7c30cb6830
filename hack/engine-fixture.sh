#!/usr/bin/env bash
# The real Pulumi engine for the tests: the pulumi CLI and the kubernetes resource provider,
# built from their Go modules (the releases' binaries cannot be downloaded here).
#
#   hack/engine-fixture.sh build   build both into the cache, unless they are there already
#   hack/engine-fixture.sh bin     print the directory that holds pulumi and pulumi-resource-kubernetes
#
# The cache (REDIS_SENTINEL_ENGINE_CACHE, default /var/cache/redis-sentinel/engine-<versions>)
# holds the wrapper modules and the binaries; nothing of it belongs in the repository. The tests
# run programs as Automation API inline programs, so no language host is needed.
set -euo pipefail

# shellcheck source=hack/lib.sh
. "$(dirname "$0")/lib.sh"

cli_version=v3.274.1
# The provider's module at the commit of the SDK release our go.mod asks for; the plugin is
# installed under that SDK version, which the SDK's resources request.
provider_module=github.com/pulumi/pulumi-kubernetes/provider/v4
provider_commit=v4.0.0-20260115033456-f47bc2d6f199
provider_version=4.33.0
# The newest pkg/v3 that the provider's code still compiles against.
provider_pulumi_version=v3.245.0
provider_sdk_version=v4.24.0
stamp="pulumi $cli_version kubernetes $provider_version ($provider_commit, pulumi $provider_pulumi_version)"
cache=${REDIS_SENTINEL_ENGINE_CACHE:-/var/cache/redis-sentinel/engine-pulumi-$cli_version-kubernetes-$provider_version}
bin=$cache/bin

usage() {
	echo "usage: $0 build | bin" >&2
	exit 2
}

built() {
	[ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ] && [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-resource-kubernetes" ]
}

# cli_module writes the wrapper module of the CLI: pkg/v3's go.mod replaces the SDK with ../sdk,
# which a dependency cannot do, and clipboard with a fork, which the wrapper repeats.
cli_module() {
	local dir=$1
	mkdir -p "$dir"
	cat >"$dir/go.mod" <<-EOF
		module redis-sentinel.local/pulumi-cli

		go 1.26.6

		require (
			github.com/pulumi/pulumi/pkg/v3 $cli_version
			github.com/pulumi/pulumi/sdk/v3 $cli_version
		)

		replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
	EOF
}

# provider_source copies the provider's module (the module cache is read-only) and fixes its
# go.mod: it replaces the SDK with ../sdk, which is not in the module, so it takes a published SDK
# and the pkg/v3 that goes with it. The binary embeds the schema with its version set, as the
# module's own generate.go writes it.
provider_source() {
	local src=$1 dir=$2
	rm -rf "$dir"
	cp -r "$src" "$dir"
	chmod -R u+w "$dir"
	sed -i -e '\#^replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => ../sdk#d' \
		-e "s#^\(\tgithub.com/pulumi/pulumi-kubernetes/sdk/v4\) v.*#\1 $provider_sdk_version#" \
		-e "s#^\(\tgithub.com/pulumi/pulumi/pkg/v3\) v.*#\1 $provider_pulumi_version#" \
		-e "s#^\(\tgithub.com/pulumi/pulumi/sdk/v3\) v.*#\1 $provider_pulumi_version#" "$dir/go.mod"
	grep -q "pulumi/pkg/v3 $provider_pulumi_version" "$dir/go.mod" || fail "could not set pkg/v3 in $dir/go.mod"
	! grep -q '=> ../sdk' "$dir/go.mod" || fail "could not drop the ../sdk replace in $dir/go.mod"
	(cd "$dir/cmd/pulumi-resource-kubernetes" && VERSION=$provider_version GOWORK=off GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" go run generate.go)
}

# build_binaries is build_cached's (hack/lib.sh) step for this fixture.
build_binaries() {
	local start=$SECONDS
	mkdir -p "$bin"

	cli_module "$cache/cli-module"
	go_build "$cache/cli-module" -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version" \
		-o "$bin/" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
	log "pulumi built: $((SECONDS - start))s"

	provider_source "$(module_dir "$provider_module@$provider_commit")" "$cache/provider-module"
	go_build "$cache/provider-module" -ldflags "-X $provider_module/pkg/version.Version=$provider_version" \
		-o "$bin/" ./cmd/pulumi-resource-kubernetes
	log "pulumi-resource-kubernetes built: $((SECONDS - start))s"

}

case "${1:-}" in
build)
	[ $# -eq 1 ] || usage
	build_cached "$cache" "$stamp"
	;;
bin)
	[ $# -eq 1 ] || usage
	built || fail "not built in $cache: run $0 build first"
	echo "$bin"
	;;
*)
	usage
	;;
esac
