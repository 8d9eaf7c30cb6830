#!/usr/bin/env bash
# A real single-node Kubernetes cluster for the tests: the control plane of hack/kube-fixture.sh,
# kube-scheduler, containerd with runc and the CNI bridge, the kubelet, kube-proxy and CoreDNS,
# with the images of hack/node-images.sh (BusyBox userlands with Debian's redis and haproxy).
#
#   hack/node-fixture.sh build          build both fixtures' binaries and images into their caches
#   hack/node-fixture.sh start DIR      start the cluster with its data and logs in DIR; write
#                                       DIR/kubeconfig, DIR/kubectl, DIR/netns and DIR/node.env
#   hack/node-fixture.sh exec DIR CMD…  run CMD in the cluster's network namespace
#   hack/node-fixture.sh stop DIR       stop it, remove every mount, cgroup and link it made, and check
#                                       that nothing is left and the host's network is as before
#
# Nothing can leave the machine by construction: every process of the cluster, and every client
# of it (`exec`), runs in a network namespace of its own whose only links are loopback and the
# pods' bridge, with an unreachable default route. The pod range and the Service range exist only
# there. Its iptables rules (kube-proxy's) live and die with that namespace.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=hack/lib.sh
. "$here/lib.sh"

kube_cache=${REDIS_SENTINEL_KUBE_CACHE:-/var/cache/redis-sentinel/kube-v1.36.4}
bin=$kube_cache/bin
node_name=redis-sentinel-node
# The pods' range; the bridge holds its first address, which is the node's IP and where CoreDNS
# answers. The Service range is kube-fixture.sh's.
pod_range=10.244.0.0/24
node_ip=10.244.0.1
service_range=10.0.0.0/24
# Local PersistentVolumes the default StorageClass offers: enough for a release and its
# re-created claims.
volumes=12

usage() {
	echo "usage: $0 build | start DIR | exec DIR CMD... | stop DIR" >&2
	exit 2
}

# host_network lists the host's links and iptables chains (every table), which the node, in a
# namespace of its own, must leave as it found them: start records them, stop compares.
host_network() {
	ip -o link show | awk '{ print "link " $2 }'
	iptables-save | awk '/^[:*]/ { print "iptables " $1 }'
}

netns_of() {
	cat "$1/netns" 2>/dev/null || fail "$1/netns does not exist: nothing was started there"
}

in_netns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# The node's processes, in the order they start (start_component in hack/lib.sh): each
# launch_NAME DIR PORTS... starts one, ready_NAME DIR PORTS... says whether it answers. They run
# inside the namespace (start re-executes this script there), so the ports are the namespace's.
launch_kube_scheduler() {
	launch "$1" kube-scheduler "$bin/kube-scheduler" --kubeconfig "$1/kubeconfig" \
		--authentication-kubeconfig "$1/kubeconfig" --authorization-kubeconfig "$1/kubeconfig" \
		--authentication-skip-lookup --leader-elect=false --bind-address 127.0.0.1 --secure-port "$2"
}

# The scheduler's /healthz is open to anonymous requests; its certificate is self-signed.
ready_kube_scheduler() {
	https_get "$2" /healthz | grep -q '^HTTP/1.[01] 200'
}

launch_containerd() {
	launch "$1" containerd containerd --config "$1/containerd/config.toml"
}

ready_containerd() {
	ctr --address "$1/containerd/containerd.sock" version
}

launch_kubelet() {
	launch "$1" kubelet "$bin/kubelet" --config "$1/kubelet/config.yaml" --kubeconfig "$1/kubeconfig" \
		--root-dir "$1/kubelet" --cert-dir "$1/kubelet/pki" --hostname-override "$node_name" \
		--node-ip "$node_ip"
}

ready_kubelet() {
	[ "$("$bin/kubectl" --kubeconfig "$1/kubeconfig" get node "$node_name" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

launch_kube_proxy() {
	launch "$1" kube-proxy "$bin/kube-proxy" --config "$1/kube-proxy.yaml"
}

# Healthy once it has written the Services' rules.
ready_kube_proxy() {
	http_get 10256 /healthz | grep -q '^HTTP/1.[01] 200'
}

launch_coredns() {
	launch "$1" coredns "$images_dir/bin/coredns" -conf "$1/Corefile"
}

ready_coredns() {
	grep -q 'CoreDNS-' "$1/coredns.log" && http_get 8181 /ready | grep -q '^HTTP/1.[01] 200'
}

write_configs() {
	local dir=$1 cgroup=$2
	mkdir -p "$dir/containerd" "$dir/cni" "$dir/kubelet" "$dir/pod-logs"
	cat >"$dir/containerd/config.toml" <<-EOF
		version = 2
		root = "$dir/containerd/root"
		state = "$dir/containerd/state"
		[grpc]
		  address = "$dir/containerd/containerd.sock"
		[ttrpc]
		  address = "$dir/containerd/containerd.ttrpc.sock"
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$dir/containerd/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$pause_image"
		  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj ("can't get final child's PID").
		  restrict_oom_score_adj = true
		  # The pods' network namespaces are mounted under DIR, so stop finds every one.
		  netns_mounts_under_state_dir = true
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$dir/cni"
		  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		    runtime_type = "io.containerd.runc.v2"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		      Root = "$dir/runc"
	EOF
	# The pods' routes: their own range (the bridge) and the Service range, nothing else.
	cat >"$dir/cni/10-bridge.conflist" <<-EOF
		{
		  "cniVersion": "0.4.0",
		  "name": "redis-sentinel-node",
		  "plugins": [{
		    "type": "bridge",
		    "bridge": "cni0",
		    "isGateway": true,
		    "ipMasq": false,
		    "hairpinMode": true,
		    "ipam": {
		      "type": "host-local",
		      "dataDir": "$dir/cni-ipam",
		      "ranges": [[{"subnet": "$pod_range", "gateway": "$node_ip"}]],
		      "routes": [{"dst": "$service_range"}]
		    }
		  }]
		}
	EOF
	# cgroup v1 and swap are what this machine has. The eviction thresholds fit a shared CI disk:
	# the defaults taint the node once the disk is 85% full. Image garbage collection is off: the
	# images cannot be pulled again.
	cat >"$dir/kubelet/config.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		failCgroupV1: false
		failSwapOn: false
		cgroupDriver: cgroupfs
		cgroupRoot: /$cgroup
		containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
		address: $node_ip
		readOnlyPort: 0
		healthzBindAddress: 127.0.0.1
		authentication:
		  anonymous:
		    enabled: true
		  webhook:
		    enabled: false
		authorization:
		  mode: AlwaysAllow
		clusterDNS: [$node_ip]
		clusterDomain: cluster.local
		resolvConf: $dir/resolv.conf
		podLogsDir: $dir/pod-logs
		evictionHard:
		  memory.available: 200Mi
		  nodefs.available: 1Gi
		  imagefs.available: 1Gi
		  nodefs.inodesFree: 1%
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		serializeImagePulls: false
		syncFrequency: 10s
	EOF
	: >"$dir/resolv.conf"
	cat >"$dir/kube-proxy.yaml" <<-EOF
		apiVersion: kubeproxy.config.k8s.io/v1alpha1
		kind: KubeProxyConfiguration
		clientConnection:
		  kubeconfig: $dir/kubeconfig
		mode: iptables
		hostnameOverride: $node_name
		clusterCIDR: $pod_range
		bindAddress: $node_ip
		healthzBindAddress: 127.0.0.1:10256
		metricsBindAddress: 127.0.0.1:10249
		# The namespace's conntrack table is the host's: leave its sysctls alone.
		conntrack:
		  maxPerCore: 0
		  min: 0
		  tcpEstablishedTimeout: 0s
		  tcpCloseWaitTimeout: 0s
	EOF
	cat >"$dir/Corefile" <<-EOF
		.:53 {
		    bind $node_ip
		    errors
		    health 127.0.0.1:8180
		    ready 127.0.0.1:8181
		    kubernetes cluster.local in-addr.arpa {
		        kubeconfig $dir/kubeconfig fixture
		        pods insecure
		    }
		}
	EOF
}

# make_volumes DIR offers local PersistentVolumes under DIR/volumes through a default StorageClass.
make_volumes() {
	local dir=$1 i
	{
		cat <<-EOF
			apiVersion: storage.k8s.io/v1
			kind: StorageClass
			metadata:
			  name: local
			  annotations:
			    storageclass.kubernetes.io/is-default-class: "true"
			provisioner: kubernetes.io/no-provisioner
			volumeBindingMode: WaitForFirstConsumer
			reclaimPolicy: Retain
		EOF
		for i in $(seq 0 $((volumes - 1))); do
			mkdir -p "$dir/volumes/pv-$i"
			cat <<-EOF
				---
				apiVersion: v1
				kind: PersistentVolume
				metadata:
				  name: local-$i
				spec:
				  capacity:
				    storage: 100Gi
				  accessModes: [ReadWriteOnce]
				  persistentVolumeReclaimPolicy: Retain
				  storageClassName: local
				  local:
				    path: $dir/volumes/pv-$i
				  nodeAffinity:
				    required:
				      nodeSelectorTerms:
				      - matchExpressions:
				        - {key: kubernetes.io/hostname, operator: In, values: [$node_name]}
			EOF
		done
	} | "$bin/kubectl" --kubeconfig "$dir/kubeconfig" apply -f - >/dev/null
}

# inside DIR runs in the node's network namespace: the control plane, then the node.
inside() {
	local dir=$1 start=$SECONDS
	"$here/kube-fixture.sh" start "$dir/control-plane" || return 1
	ln -sfn control-plane/kubeconfig "$dir/kubeconfig"
	ln -sfn "$bin/kubectl" "$dir/kubectl"
	: >"$dir/pids"
	start_component "$dir" kube-scheduler 1 60 || return 1
	start_component "$dir" containerd 0 60 || return 1
	"$here/node-images.sh" import "$dir/containerd/containerd.sock" || return 1
	start_component "$dir" kubelet 0 120 || return 1
	start_component "$dir" kube-proxy 0 60 || return 1
	start_component "$dir" coredns 0 60 || return 1
	make_volumes "$dir"
	log "node ready in $((SECONDS - start))s"
}

start() {
	local start=$SECONDS dir ns cgroup
	mkdir -p "$1"
	dir=$(cd "$1" && pwd -P)
	[ ! -e "$dir/netns" ] || fail "$dir/netns exists: stop that cluster first ($0 stop $dir)"
	# Everything it needs is checked before anything is made.
	local tool
	for tool in containerd containerd-shim-runc-v2 runc ctr iptables nsenter openssl /usr/lib/cni/bridge \
		/usr/lib/cni/host-local /usr/lib/cni/loopback; do
		command -v "$tool" >/dev/null || fail "$tool is missing: see .ci/run for the Debian packages"
	done
	for tool in kubelet kube-proxy kube-scheduler kubectl; do
		[ -x "$bin/$tool" ] || fail "$bin/$tool is missing: run $0 build"
	done
	# The sandbox image is hack/node-images.sh's pause.
	pause_image=$("$here/node-images.sh" list | awk -F '\t' '$1 ~ /\/pause:/ { print $1 }')
	[ -n "$pause_image" ] || fail "hack/node-images.sh lists no pause image: run $0 build"

	ns=rs-node-$(openssl rand -hex 4)
	cgroup=$ns
	echo "$ns" >"$dir/netns"
	host_network >"$dir/host-network.before"
	# containerd's shims put their sockets in /run/containerd/s whatever its state directory: stop
	# removes those that were not there before.
	ls -A /run/containerd/s >"$dir/shim-sockets.before" 2>/dev/null || true
	[ -d /run/containerd ] || touch "$dir/made-run-containerd"
	# A failure from here on stops what was made. The trap runs after start's locals are gone.
	started_dir=$dir
	trap 'stop "$started_dir" || true' EXIT
	ip netns add "$ns"
	# No route out: loopback, the bridge for the pods' range, the Service range on the bridge
	# (kube-proxy's DNAT happens after routing), and an unreachable default for everything else.
	ip -n "$ns" link set lo up
	ip -n "$ns" link add cni0 type bridge
	ip -n "$ns" addr add "$node_ip/${pod_range#*/}" dev cni0
	ip -n "$ns" link set cni0 up
	ip -n "$ns" route add "$service_range" dev cni0 src "$node_ip"
	ip -n "$ns" route add unreachable default
	ip -n "$ns" -6 route add unreachable default 2>/dev/null || true
	in_netns "$ns" sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
	local controller
	for controller in /sys/fs/cgroup/*/; do
		[ -w "$controller" ] && [ ! -L "${controller%/}" ] && mkdir -p "$controller$cgroup"
	done
	write_configs "$dir" "$cgroup"
	# What the tests need to know of the node, as KEY=VALUE lines.
	cat >"$dir/node.env" <<-EOF
		POD_RANGE=$pod_range
		SERVICE_RANGE=$service_range
		NODE_IP=$node_ip
		CONTAINERD_ADDRESS=$dir/containerd/containerd.sock
	EOF
	in_netns "$ns" "$0" __inside "$dir"
	trap - EXIT
	log "ready in $((SECONDS - start))s: $0 exec $dir kubectl --kubeconfig $dir/kubeconfig ..."
}

# mounts_under DIR lists the mount points under DIR, deepest first.
mounts_under() {
	awk -v dir="$1/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# processes_of DIR lists the pids whose command line names DIR (containerd's shims among them),
# but this script's own.
processes_of() {
	local p cmdline
	for p in /proc/[0-9]*; do
		if running "${p#/proc/}" "$1"; then
			cmdline=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
			[[ "$cmdline" == *node-fixture.sh* ]] || echo "${p#/proc/}"
		fi
	done
}

# remove_containers DIR kills and deletes every container of the node's containerd, if it runs.
remove_containers() {
	local address=$1/containerd/containerd.sock id
	ctr --address "$address" version >/dev/null 2>&1 || return 0
	for id in $(ctr --address "$address" -n k8s.io containers list -q); do
		ctr --address "$address" -n k8s.io tasks delete --force "$id" >/dev/null 2>&1 || true
		ctr --address "$address" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
	done
}

stop() {
	local dir ns cgroup pid
	dir=$(cd "$1" && pwd -P)
	ns=$(netns_of "$dir")
	cgroup=$ns
	# The kubelet first, so that nothing restarts a container; then every container, through
	# containerd, so that their shims exit and remove their sockets; then the node's other
	# processes and the control plane; then whatever is left.
	if [ -f "$dir/pids" ]; then
		pid=$(awk '$1 == "kubelet" { print $2 }' "$dir/pids")
		if [ -n "$pid" ] && running "$pid" "$dir"; then
			kill -TERM "$pid"
		fi
		remove_containers "$dir"
		while read -r _ pid; do
			if running "$pid" "$dir"; then
				kill -TERM "$pid" 2>/dev/null || true
			fi
		done < <(tac "$dir/pids")
	fi
	if [ -f "$dir/control-plane/pids" ]; then
		"$here/kube-fixture.sh" stop "$dir/control-plane"
	fi
	local controller deadline=$((SECONDS + 30))
	while :; do
		local -a left=()
		for controller in /sys/fs/cgroup/*/"$cgroup"; do
			[ -d "$controller" ] || continue
			while read -r pid; do
				left+=("$pid")
			done < <(find "$controller" -name cgroup.procs -exec cat {} + 2>/dev/null)
		done
		while read -r pid; do
			left+=("$pid")
		done < <(processes_of "$dir")
		[ "${#left[@]}" -gt 0 ] || break
		if [ "$SECONDS" -ge "$deadline" ]; then
			fail "still running after 30s: ${left[*]}"
		fi
		kill -KILL "${left[@]}" 2>/dev/null || true
		sleep 0.5
	done
	local mount
	while read -r mount; do
		umount "$mount" 2>/dev/null || umount -l "$mount"
	done < <(mounts_under "$dir")
	for controller in /sys/fs/cgroup/*/"$cgroup"; do
		[ -d "$controller" ] || continue
		find "$controller" -depth -type d -exec rmdir {} +
	done
	find /var/log/containers -maxdepth 1 -lname "$dir/*" -delete 2>/dev/null || true
	local socket
	if [ -f "$dir/shim-sockets.before" ]; then
		for socket in /run/containerd/s/*; do
			[ -e "$socket" ] || continue
			grep -qxF "$(basename "$socket")" "$dir/shim-sockets.before" || rm -f "$socket"
		done
	fi
	if [ -f "$dir/made-run-containerd" ]; then
		rm -rf /run/containerd
	fi
	[ -z "$(ip netns pids "$ns" 2>/dev/null)" ] || fail "processes left in $ns: $(ip netns pids "$ns")"
	ip netns del "$ns"
	rm -f "$dir/netns" "$dir/pids" "$dir/node.env" "$dir/shim-sockets.before" "$dir/made-run-containerd"

	# The checks: nothing of the cluster is left.
	[ -z "$(processes_of "$dir")" ] || fail "processes left: $(processes_of "$dir")"
	[ -z "$(mounts_under "$dir")" ] || fail "mounts left: $(mounts_under "$dir")"
	! compgen -G "/sys/fs/cgroup/*/$cgroup" >/dev/null || fail "cgroups left: /sys/fs/cgroup/*/$cgroup"
	! ip netns list | grep -qw "$ns" || fail "network namespace $ns left"
	if [ -f "$dir/host-network.before" ]; then
		local changed
		changed=$(diff "$dir/host-network.before" <(host_network)) ||
			fail "the host's links or iptables chains differ from before the node (< before, > now): $changed"
		rm -f "$dir/host-network.before"
	fi
	log "stopped $dir"
}

case "${1:-}" in
build)
	[ $# -eq 1 ] || usage
	"$here/kube-fixture.sh" build
	"$here/node-images.sh" build
	;;
start)
	[ $# -eq 2 ] || usage
	start "$2"
	;;
__inside)
	images_dir=$("$here/node-images.sh" dir)
	inside "$2"
	;;
exec)
	[ $# -ge 3 ] || usage
	ns=$(netns_of "$2")
	shift 2
	in_netns "$ns" "$@"
	;;
stop)
	[ $# -eq 2 ] || usage
	stop "$2"
	;;
*)
	usage
	;;
esac
