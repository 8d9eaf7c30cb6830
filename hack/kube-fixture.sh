#!/usr/bin/env bash
# A real Kubernetes control plane for the tests, on loopback only: etcd, kube-apiserver (with its
# default admission plugins, PodSecurity among them) and kube-controller-manager, built from
# source with Go. There is no scheduler and no kubelet: pods are created and stay Pending
# (hack/node-fixture.sh adds a node, with the kubelet, kube-scheduler and kube-proxy built here).
#
#   hack/kube-fixture.sh build      build the binaries and fetch the ServiceMonitor and cert-manager
#                                   Certificate CRDs into the cache
#   hack/kube-fixture.sh start DIR  start the control plane with its data and logs in DIR; write
#                                   DIR/kubeconfig, DIR/pids, and links DIR/kubectl and DIR/crds
#   hack/kube-fixture.sh stop DIR   stop what `start DIR` started and check that it is gone
#
# The cache (REDIS_SENTINEL_KUBE_CACHE, default /var/cache/redis-sentinel/kube-v1.36.4) holds
# the generated wrapper modules and the binaries; nothing of it belongs in the repository.
set -euo pipefail

kube_version=v1.36.4
kube_minor=${kube_version#v1.}
kube_minor=${kube_minor%%.*}
# Kubernetes publishes each staging module (k8s.io/api, k8s.io/client-go, ...) as v0.<minor>.<patch>.
staging_version=v0.${kube_version#v1.}
etcd_version=v3.6.16
prometheus_operator_version=v0.94.0
cert_manager_version=v1.17.2
cache=${REDIS_SENTINEL_KUBE_CACHE:-/var/cache/redis-sentinel/kube-$kube_version}
bin=$cache/bin
crds=$cache/crds
binaries=(etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)
# The Service range of the cluster; hack/node-fixture.sh routes it to its node's bridge.
service_range=10.0.0.0/24
stamp="kubernetes $kube_version etcd $etcd_version prometheus-operator $prometheus_operator_version"

# shellcheck source=hack/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: $0 build | start DIR | stop DIR" >&2
	exit 2
}

built() {
	[ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ] || return 1
	local b
	for b in "${binaries[@]}"; do
		[ -x "$bin/$b" ] || return 1
	done
	[ -f "$crds/servicemonitors.yaml" ]
}

# kube_module writes the wrapper module that builds the Kubernetes commands. k8s.io/kubernetes
# replaces its staging modules with ./staging/..., which a dependency's go.mod cannot do; the
# wrapper replaces each with its published version, the list read from that go.mod.
kube_module() {
	local src=$1 dir=$2
	mkdir -p "$dir"
	{
		echo "module redis-sentinel.local/kube-fixture"
		echo
		grep -E '^(go|godebug) ' "$src/go.mod"
		echo
		echo "require k8s.io/kubernetes $kube_version"
		echo
		echo "replace ("
		sed -n "s#^\t\(k8s.io/[^ ]*\) => \./staging/.*#\t\1 => \1 $staging_version#p" "$src/go.mod"
		echo ")"
	} >"$dir/go.mod"
	grep -q "k8s.io/api => k8s.io/api $staging_version" "$dir/go.mod" ||
		fail "found no staging replacements in $src/go.mod"
}

# etcd_module writes the wrapper module of the etcd server; it has its own module, since etcd's
# dependency versions need not agree with those of Kubernetes.
etcd_module() {
	local dir=$1
	mkdir -p "$dir"
	cat >"$dir/go.mod" <<-EOF
		module redis-sentinel.local/etcd-fixture

		go 1.26.0

		require go.etcd.io/etcd/server/v3 $etcd_version
	EOF
	cat >"$dir/main.go" <<-'EOF'
		// Command etcd is the etcd server, as etcd's own main package runs it.
		package main

		import (
			"os"

			"go.etcd.io/etcd/server/v3/etcdmain"
		)

		func main() {
			etcdmain.Main(os.Args)
		}
	EOF
}

# build_binaries is build_cached's (hack/lib.sh) step for this fixture.
build_binaries() {
	local start=$SECONDS
	mkdir -p "$bin" "$crds"

	local kube_src version_flags pkg
	kube_src=$(module_dir "k8s.io/kubernetes@$kube_version")
	kube_module "$kube_src" "$cache/kube-module"
	version_flags=""
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		version_flags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
		version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	go_build "$cache/kube-module" -ldflags "$version_flags" -o "$bin/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
		k8s.io/kubernetes/cmd/kube-proxy
	log "kubernetes built: $((SECONDS - start))s"

	etcd_module "$cache/etcd-module"
	go_build "$cache/etcd-module" -o "$bin/etcd" .
	log "etcd built: $((SECONDS - start))s"

	local operator
	operator=$(module_dir "github.com/prometheus-operator/prometheus-operator@$prometheus_operator_version")
	cp "$operator/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$crds/servicemonitors.yaml"
	chmod 644 "$crds/servicemonitors.yaml"

}

kubeconfig() {
	local server=$1 ca=$2 token=$3
	cat <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: fixture
		  cluster:
		    server: $server
		    certificate-authority: $ca
		users:
		- name: fixture
		  user:
		    token: $token
		contexts:
		- name: fixture
		  context:
		    cluster: fixture
		    user: fixture
		current-context: fixture
	EOF
}

# The components, in the order they start: launch_NAME DIR PORTS... starts NAME on the ports
# start_component (hack/lib.sh) picked, and ready_NAME DIR PORTS... says whether it answers.
launch_etcd() {
	etcd_port=$2
	local peer_port=$3
	# --unsafe-no-fsync: the data is thrown away with DIR, and fsync on a shared disk is slow.
	launch "$1" etcd "$bin/etcd" --name fixture --data-dir "$1/etcd" --unsafe-no-fsync \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "fixture=http://127.0.0.1:$peer_port" --log-level warn
}

ready_etcd() {
	http_get "$2" /health | grep -q '"health":"true"'
}

launch_kube_apiserver() {
	api_port=$2
	# The "kubernetes" Service's endpoints would be 127.0.0.1, which Endpoints refuse: no reconciler.
	# Privileged containers are allowed, as in GKE, EKS and kubeadm clusters: PodSecurity decides.
	# A node's kubelet (hack/node-fixture.sh) is reached at its InternalIP, for exec and logs.
	launch "$1" kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
		--allow-privileged \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
		--endpoint-reconciler-type none --tls-cert-file "$1/serving.crt" \
		--tls-private-key-file "$1/serving.key" --cert-dir "$1/apiserver-certs" \
		--token-auth-file "$1/tokens.csv" --authorization-mode RBAC \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$1/sa.pub" --service-account-signing-key-file "$1/sa.key" \
		--service-cluster-ip-range "$service_range" --kubelet-preferred-address-types InternalIP
}

ready_kube_apiserver() {
	"$bin/kubectl" --server "https://127.0.0.1:$2" --certificate-authority "$1/serving.crt" \
		--token "$admin_token" get --raw /readyz
}

launch_kube_controller_manager() {
	launch "$1" kube-controller-manager "$bin/kube-controller-manager" \
		--kubeconfig "$1/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$1/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$1/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$2" --cert-dir "$1/controller-manager-certs" \
		--leader-elect=false --service-account-private-key-file "$1/sa.key" \
		--root-ca-file "$1/serving.crt" --service-cluster-ip-range "$service_range"
}

# Ready: the controller-manager has given the default namespace its ServiceAccount, so the
# serviceaccount controller and the API work.
ready_kube_controller_manager() {
	"$bin/kubectl" --kubeconfig "$1/kubeconfig" get serviceaccount default -n default
}

# abort DIR stops what start began in DIR and exits: start_component has printed the cause.
abort() {
	stop "$1" || true
	exit 1
}

start() {
	local start=$SECONDS dir
	built || fail "not built in $cache: run $0 build first"
	mkdir -p "$1"
	dir=$(cd "$1" && pwd -P)
	[ ! -e "$dir/pids" ] || fail "$dir/pids exists: stop that fixture first ($0 stop $dir)"

	# The API server's serving certificate (self-signed, for 127.0.0.1), the service-account
	# key pair and the bearer tokens of the admin and of the controller-manager.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj /CN=kube-fixture-apiserver -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		-keyout "$dir/serving.key" -out "$dir/serving.crt" 2>/dev/null
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key" 2>/dev/null
	openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub"
	local kcm_token
	admin_token=$(openssl rand -hex 24)
	kcm_token=$(openssl rand -hex 24)
	umask 077
	{
		echo "$admin_token,fixture-admin,fixture-admin,system:masters"
		echo "$kcm_token,system:kube-controller-manager,kube-controller-manager,system:masters"
	} >"$dir/tokens.csv"
	umask 022
	ln -sfn "$bin/kubectl" "$dir/kubectl"
	ln -sfn "$crds" "$dir/crds"

	# Each component starts once the one it needs answers, so that a failure names its cause.
	start_component "$dir" etcd 2 60 || abort "$dir"
	start_component "$dir" kube-apiserver 1 120 || abort "$dir"
	umask 077
	kubeconfig "https://127.0.0.1:$api_port" "$dir/serving.crt" "$admin_token" >"$dir/kubeconfig"
	kubeconfig "https://127.0.0.1:$api_port" "$dir/serving.crt" "$kcm_token" >"$dir/controller-manager.kubeconfig"
	umask 022
	start_component "$dir" kube-controller-manager 1 120 || abort "$dir"
	log "ready in $((SECONDS - start))s: $dir/kubectl --kubeconfig $dir/kubeconfig"
}

stop() {
	local dir name pid
	dir=$(cd "$1" && pwd -P)
	[ -f "$dir/pids" ] || fail "$dir/pids does not exist: nothing was started there"
	local -a pids=()
	# Controller-manager first, etcd last: the reverse of the start.
	while read -r name pid; do
		if running "$pid" "$dir"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done < <(tac "$dir/pids")
	local deadline=$((SECONDS + 30))
	local -a left
	while :; do
		left=()
		for pid in "${pids[@]}"; do
			if running "$pid" "$dir"; then
				left+=("$pid")
			fi
		done
		if [ "${#left[@]}" -eq 0 ]; then
			break
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "still running after 30s, killing: ${left[*]}"
			kill -KILL "${left[@]}" 2>/dev/null || true
			sleep 1
			for pid in "${left[@]}"; do
				! running "$pid" "$dir" || fail "process $pid of $dir survived SIGKILL"
			done
			break
		fi
		sleep 0.2
	done
	rm "$dir/pids"
	log "stopped $dir"
}

# fetch_certificate_crd writes cert-manager's Certificate CRD into the cache, once per version:
# a step of its own, so that a new CRD does not rebuild the binaries. The chart's file is YAML
# whose Helm directives sit in comments, but for its labels, which it leaves out.
fetch_certificate_crd() {
	local file=$crds/certificates.cert-manager-$cert_manager_version.yaml
	[ -f "$file" ] && return
	local src
	src=$(module_dir "github.com/cert-manager/cert-manager@$cert_manager_version")
	sed '/^  labels:$/,/^spec:$/{/^spec:$/!d}' "$src/deploy/crds/crd-certificates.yaml" >"$file.new"
	if sed -n '/{{/p' "$file.new" | grep -qv '^ *#'; then
		fail "$file: Helm directives left outside comments"
	fi
	chmod 644 "$file.new"
	mv "$file.new" "$file"
	log "cert-manager $cert_manager_version's Certificate CRD fetched"
}

case "${1:-}" in
build)
	[ $# -eq 1 ] || usage
	build_cached "$cache" "$stamp"
	fetch_certificate_crd
	;;
start)
	[ $# -eq 2 ] || usage
	start "$2"
	;;
stop)
	[ $# -eq 2 ] || usage
	stop "$2"
	;;
*)
	usage
	;;
esac
