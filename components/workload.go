package components

import (
	"path"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// User and group of the redis containers (the official images' redis user) and of HAProxy
// (the official image's haproxy user). Both images start as root by default; the pods do not.
const (
	redisUser   = 999
	haproxyUser = 99
)

// The preStop hook ends by preStopDeadlineSeconds, however many peers are unreachable, but for
// one redis-cli call (at most 3 s) that restores the write bound (redis-prestop.sh). Then, on
// SIGTERM, a master waits up to shutdownTimeoutSeconds for lagging replicas (redis.conf's
// shutdown-timeout). The grace period covers both, with a few seconds to spare: past it the
// kubelet kills redis, which then skips its clean shutdown (the wait for lagging replicas, the
// last fsync of the AOF). tests/scripts_test.go runs the hook with unreachable peers against
// this bound.
const (
	preStopDeadlineSeconds        = 20
	shutdownTimeoutSeconds        = 10
	terminationGracePeriodSeconds = 40
)

// Volume names of the redis pods.
const (
	volumeConfig = "config"
	volumeRun    = "run"
	volumeData   = "data"
	volumeTmp    = "tmp"
)

func (b *sentinelBuilder) statefulSet() error {
	a, n := b.args, b.names
	script := func(name string, args ...string) pulumi.StringArray {
		return pulumi.ToStringArray(append([]string{"sh", path.Join(templateDir, name)}, args...))
	}
	probe := func(mode string, period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			Exec:             &corev1.ExecActionArgs{Command: script("probe.sh", mode)},
			PeriodSeconds:    pulumi.Int(period),
			TimeoutSeconds:   pulumi.Int(5),
			FailureThreshold: pulumi.Int(failures),
		}
	}
	secretRef := b.passwordRef()
	env := corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("POD_NAME"), ValueFrom: &corev1.EnvVarSourceArgs{
			FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.name")},
		}},
		// Kubernetes expands $(POD_NAME): the pod's stable name under the headless Service.
		envVar("POD_FQDN", "$(POD_NAME)."+peerDomain(n, a.ReleaseArgs)),
		envVar("PEER_DOMAIN", peerDomain(n, a.ReleaseArgs)),
		envVar("REPLICAS", strconv.Itoa(a.Replicas)),
		envVar("MASTER_SET", a.MasterSetName),
		envVar("REDIS_PORT", strconv.Itoa(RedisPort)),
		envVar("SENTINEL_PORT", strconv.Itoa(SentinelPort)),
		envVar("TEMPLATE_DIR", templateDir),
		envVar("RUN_DIR", runDir),
		envVar("DATA_DIR", dataDir),
		envVar("PRESTOP_DEADLINE_SECONDS", strconv.Itoa(preStopDeadlineSeconds)),
		corev1.EnvVarArgs{Name: pulumi.String("REDIS_PASSWORD"), ValueFrom: secretRef},
		// redis-cli reads the password from REDISCLI_AUTH, so it never appears in a process list.
		corev1.EnvVarArgs{Name: pulumi.String("REDISCLI_AUTH"), ValueFrom: secretRef},
	}
	mounts := func(withData bool) corev1.VolumeMountArray {
		m := corev1.VolumeMountArray{
			corev1.VolumeMountArgs{Name: pulumi.String(volumeConfig), MountPath: pulumi.String(templateDir), ReadOnly: pulumi.Bool(true)},
			corev1.VolumeMountArgs{Name: pulumi.String(volumeRun), MountPath: pulumi.String(runDir)},
			corev1.VolumeMountArgs{Name: pulumi.String(volumeTmp), MountPath: pulumi.String("/tmp")},
		}
		if withData {
			m = append(m, corev1.VolumeMountArgs{Name: pulumi.String(volumeData), MountPath: pulumi.String(dataDir)})
		}
		return m
	}

	redis := corev1.ContainerArgs{
		Name:            pulumi.String("redis"),
		Image:           a.RedisImage,
		Command:         script("redis-start.sh"),
		Ports:           corev1.ContainerPortArray{containerPort("redis", RedisPort)},
		Env:             env,
		Resources:       resources(a.RedisCPU, a.RedisMemory, a.RedisMemory),
		StartupProbe:    probe("redis-alive", 5, 30),
		LivenessProbe:   probe("redis-alive", 10, 3),
		ReadinessProbe:  probe("redis-ready", 5, 2),
		Lifecycle:       &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{Exec: &corev1.ExecActionArgs{Command: script("redis-prestop.sh")}}},
		SecurityContext: restrictedContainer(),
		VolumeMounts:    mounts(true),
	}
	sentinel := corev1.ContainerArgs{
		Name:            pulumi.String("sentinel"),
		Image:           a.RedisImage,
		Command:         script("sentinel-start.sh"),
		Ports:           corev1.ContainerPortArray{containerPort("sentinel", SentinelPort)},
		Env:             env,
		Resources:       resources("50m", "64Mi", "128Mi"),
		StartupProbe:    probe("sentinel-alive", 5, 30),
		LivenessProbe:   probe("sentinel-alive", 10, 3),
		ReadinessProbe:  probe("sentinel-alive", 5, 2),
		SecurityContext: restrictedContainer(),
		VolumeMounts:    mounts(false),
	}

	volumes := corev1.VolumeArray{
		corev1.VolumeArgs{Name: pulumi.String(volumeConfig), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(b.redisConfigName)}},
		// The configs the start scripts render here hold the password: tmpfs keeps it off the
		// node's disk, where a disk-backed emptyDir would leave it after the pod is gone. They
		// are a few kilobytes (Sentinel's rewritten config grows by a line per peer); the pages
		// count against the memory limit of the container that writes them.
		corev1.VolumeArgs{Name: pulumi.String(volumeRun), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{
			Medium: pulumi.String("Memory"), SizeLimit: pulumi.String("1Mi"),
		}},
		emptyDir(volumeTmp),
	}
	var claims corev1.PersistentVolumeClaimTypeArray
	if a.Ephemeral {
		volumes = append(volumes, emptyDir(volumeData))
	} else {
		claim := &corev1.PersistentVolumeClaimSpecArgs{
			AccessModes: pulumi.ToStringArray([]string{"ReadWriteOnce"}),
			Resources: &corev1.VolumeResourceRequirementsArgs{
				Requests: pulumi.StringMap{"storage": pulumi.String(a.StorageSize)},
			},
		}
		if a.StorageClass != "" {
			claim.StorageClassName = pulumi.String(a.StorageClass)
		}
		claims = corev1.PersistentVolumeClaimTypeArray{corev1.PersistentVolumeClaimTypeArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(volumeData), Labels: b.labels(componentRedis)},
			Spec:     claim,
		}}
	}

	containers := corev1.ContainerArray{redis, sentinel}
	if !a.DisableMetrics {
		containers = append(containers, b.exporter())
	}

	sts, err := appsv1.NewStatefulSet(b.ctx, n.base, &appsv1.StatefulSetArgs{
		Metadata: b.meta(n.base, b.labels(componentRedis)),
		Spec: &appsv1.StatefulSetSpecArgs{
			Replicas:    pulumi.Int(a.Replicas),
			ServiceName: pulumi.String(n.headless),
			// Pods start together: the start scripts, not the start order, decide who is master,
			// and an OrderedReady StatefulSet could never recover if pod 0 cannot become ready.
			PodManagementPolicy: pulumi.String("Parallel"),
			Selector:            &metav1.LabelSelectorArgs{MatchLabels: b.selector(componentRedis)},
			UpdateStrategy:      &appsv1.StatefulSetUpdateStrategyArgs{Type: pulumi.String("RollingUpdate")},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: b.labels(componentRedis)},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:            pulumi.String(n.serviceAccount),
					AutomountServiceAccountToken:  pulumi.Bool(false),
					EnableServiceLinks:            pulumi.Bool(false),
					TerminationGracePeriodSeconds: pulumi.Int(terminationGracePeriodSeconds),
					SecurityContext:               restrictedPod(redisUser),
					Affinity:                      b.separateNodes(componentRedis),
					TopologySpreadConstraints:     b.acrossZones(componentRedis),
					Containers:                    containers,
					Volumes:                       volumes,
					// The pause container becomes every container's PID 1, and it reaps orphans.
					// Otherwise redis-server and sentinel are PID 1 of their containers (the start
					// scripts exec them), and every orphan goes to them, such as the watcher process
					// that BusyBox's `timeout` leaves behind for each redis-cli call of a probe.
					// redis-server reaps children only while it has a fork of its own: 18 zombies a
					// minute in each redis container on a real node, and a new master spent seconds
					// reaping them before it counted its replica, refusing writes meanwhile
					// (min-replicas-to-write). Sentinel reaps them, with a warning in its log for each.
					// Sharing shows each container the pod's other processes and their environment,
					// which holds nothing that the container lacks: all run as the same user, with the
					// same password.
					ShareProcessNamespace: pulumi.Bool(true),
				},
			},
			VolumeClaimTemplates: claims,
		},
	}, append(b.opts,
		pulumi.DependsOn([]pulumi.Resource{b.secret, b.redisConfig}),
		// Kubernetes refuses any change of volumeClaimTemplates, so the provider would replace
		// the StatefulSet: every pod deleted at once. The claims are what a template change
		// should reach; resizeClaims grows them, and CheckChange refuses every other change.
		pulumi.IgnoreChanges([]string{"spec.volumeClaimTemplates"}),
	)...)
	if err != nil || a.Ephemeral {
		return err
	}
	return b.resizeClaims(sts, a.Replicas)
}

func (b *sentinelBuilder) haproxy() error {
	a, n := b.args, b.names
	_, err := appsv1.NewDeployment(b.ctx, n.haproxy, &appsv1.DeploymentArgs{
		Metadata: b.meta(n.haproxy, b.labels(componentHAProxy)),
		Spec: &appsv1.DeploymentSpecArgs{
			Replicas: pulumi.Int(a.HAProxyReplicas),
			Selector: &metav1.LabelSelectorArgs{MatchLabels: b.selector(componentHAProxy)},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: b.labels(componentHAProxy)},
				Spec: &corev1.PodSpecArgs{
					ServiceAccountName:           pulumi.String(n.serviceAccount),
					AutomountServiceAccountToken: pulumi.Bool(false),
					EnableServiceLinks:           pulumi.Bool(false),
					SecurityContext:              restrictedPod(haproxyUser),
					Affinity:                     b.separateNodes(componentHAProxy),
					TopologySpreadConstraints:    b.acrossZones(componentHAProxy),
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:    pulumi.String("haproxy"),
						Image:   a.HAProxyImage,
						Command: pulumi.ToStringArray([]string{"haproxy", "-db", "-f", path.Join(haproxyDir, haproxyConfigKey)}),
						Ports: corev1.ContainerPortArray{
							containerPort("redis", RedisPort),
							containerPort("health", haproxyHealthPort),
						},
						Env:       corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("REDIS_PASSWORD"), ValueFrom: b.passwordRef()}},
						Resources: resources("50m", "64Mi", "128Mi"),
						// Ready while HAProxy runs, whatever the master's state: see haproxy.cfg.
						ReadinessProbe: &corev1.ProbeArgs{
							HttpGet: &corev1.HTTPGetActionArgs{
								Path: pulumi.String(haproxyHealthPath), Port: pulumi.Int(haproxyHealthPort),
							},
							PeriodSeconds: pulumi.Int(2), FailureThreshold: pulumi.Int(2),
						},
						LivenessProbe: &corev1.ProbeArgs{
							TcpSocket:     &corev1.TCPSocketActionArgs{Port: pulumi.Int(haproxyHealthPort)},
							PeriodSeconds: pulumi.Int(10),
						},
						SecurityContext: restrictedContainer(),
						VolumeMounts: corev1.VolumeMountArray{corev1.VolumeMountArgs{
							Name: pulumi.String(volumeConfig), MountPath: pulumi.String(haproxyDir), ReadOnly: pulumi.Bool(true),
						}},
					}},
					Volumes: corev1.VolumeArray{corev1.VolumeArgs{
						Name: pulumi.String(volumeConfig),
						ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
							Name:  pulumi.String(b.haproxyConfigName),
							Items: corev1.KeyToPathArray{corev1.KeyToPathArgs{Key: pulumi.String(haproxyConfigKey), Path: pulumi.String(haproxyConfigKey)}},
						},
					}},
				},
			},
		},
	}, append(b.opts, pulumi.DependsOn([]pulumi.Resource{b.secret, b.haproxyConfig}))...)
	return err
}

// restrictedPod and restrictedContainer satisfy the "restricted" Pod Security Standard.
func restrictedPod(user int) *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot:        pulumi.Bool(true),
		RunAsUser:           pulumi.Int(user),
		RunAsGroup:          pulumi.Int(user),
		FsGroup:             pulumi.Int(user),
		FsGroupChangePolicy: pulumi.String("OnRootMismatch"),
		SeccompProfile:      &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

func restrictedContainer() *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		AllowPrivilegeEscalation: pulumi.Bool(false),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		RunAsNonRoot:             pulumi.Bool(true),
	}
}

func resources(cpu, memory, memoryLimit string) *corev1.ResourceRequirementsArgs {
	return &corev1.ResourceRequirementsArgs{
		Requests: pulumi.StringMap{"cpu": pulumi.String(cpu), "memory": pulumi.String(memory)},
		Limits:   pulumi.StringMap{"memory": pulumi.String(memoryLimit)},
	}
}

func envVar(name, value string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{Name: pulumi.String(name), Value: pulumi.String(value)}
}

func containerPort(name string, port int) corev1.ContainerPortArgs {
	return corev1.ContainerPortArgs{Name: pulumi.String(name), ContainerPort: pulumi.Int(port), Protocol: pulumi.String("TCP")}
}

func emptyDir(name string) corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(name), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}}
}
