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
	volumeAuth   = "auth"
)

// statefulSet registers the StatefulSet and, after it, the credentials Job, which it returns.
func (b *sentinelBuilder) statefulSet() (pulumi.Resource, error) {
	a := b.args
	env := b.podEnv(
		envVar("REPLICAS", strconv.Itoa(a.Replicas)),
		envVar("MASTER_SET", a.MasterSetName),
		envVar("REDIS_PORT", strconv.Itoa(RedisPort)),
		envVar("SENTINEL_PORT", strconv.Itoa(SentinelPort)),
	)
	redis := corev1.ContainerArgs{
		Name:            pulumi.String("redis"),
		Image:           a.RedisImage,
		Command:         scriptCommand("redis-start.sh"),
		Ports:           corev1.ContainerPortArray{containerPort("redis", RedisPort)},
		Env:             env,
		Resources:       resources(a.RedisCPU, a.RedisMemory, a.RedisMemory),
		StartupProbe:    execProbe("probe.sh", "redis-alive", 5, 30),
		LivenessProbe:   execProbe("probe.sh", "redis-alive", 10, 3),
		ReadinessProbe:  execProbe("probe.sh", "redis-ready", 5, 2),
		Lifecycle:       preStop("redis-prestop.sh"),
		SecurityContext: restrictedContainer(),
		VolumeMounts:    b.podMounts(true),
	}
	sentinel := corev1.ContainerArgs{
		Name:            pulumi.String("sentinel"),
		Image:           a.RedisImage,
		Command:         scriptCommand("sentinel-start.sh"),
		Ports:           corev1.ContainerPortArray{containerPort("sentinel", SentinelPort)},
		Env:             env,
		Resources:       resources("50m", "64Mi", "128Mi"),
		StartupProbe:    execProbe("probe.sh", "sentinel-alive", 5, 30),
		LivenessProbe:   execProbe("probe.sh", "sentinel-alive", 10, 3),
		ReadinessProbe:  execProbe("probe.sh", "sentinel-alive", 5, 2),
		SecurityContext: restrictedContainer(),
		VolumeMounts:    b.podMounts(false),
	}
	sts, err := b.redisStatefulSet(a.Replicas, corev1.ContainerArray{redis, sentinel}, nil)
	if err != nil {
		return nil, err
	}
	return b.credentialsJob(corev1.EnvVarArray{
		envVar("PODS", strconv.Itoa(a.Replicas)),
		envVar("MASTER_SET", a.MasterSetName),
		envVar("SENTINEL_PORT", strconv.Itoa(SentinelPort)),
	}, sts)
}

// haproxy registers HAProxy's Deployment after credentials, the Job that gives every running
// server the user monitor's password that HAProxy's checks log in with: a release created
// before that user existed gets it there, without waiting for its pods to roll.
func (b *sentinelBuilder) haproxy(credentials pulumi.Resource) error {
	a, n := b.args, b.names
	volumes := corev1.VolumeArray{corev1.VolumeArgs{
		Name: pulumi.String(volumeConfig),
		ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
			Name:  pulumi.String(b.haproxyConfigName),
			Items: corev1.KeyToPathArray{corev1.KeyToPathArgs{Key: pulumi.String(haproxyConfigKey), Path: pulumi.String(haproxyConfigKey)}},
		},
	}}
	mounts := corev1.VolumeMountArray{corev1.VolumeMountArgs{
		Name: pulumi.String(volumeConfig), MountPath: pulumi.String(haproxyDir), ReadOnly: pulumi.Bool(true),
	}}
	dependsOn := []pulumi.Resource{b.secret, b.haproxyConfig, credentials}
	if a.TLS.Enabled {
		// Only the CA, which its checks verify the servers and sentinels with: HAProxy passes the
		// clients' TLS through to redis and never needs the release's private key.
		volumes = append(volumes, b.tlsVolume(tlsCAKey))
		mounts = append(mounts, tlsMount())
		if b.tlsSource != nil {
			dependsOn = append(dependsOn, b.tlsSource)
		}
	}
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
							containerPort("redis-read", ReadPort),
							containerPort("health", haproxyHealthPort),
						},
						Env:       corev1.EnvVarArray{corev1.EnvVarArgs{Name: pulumi.String("MONITOR_PASSWORD"), ValueFrom: b.secretRef(monitorPasswordKey)}},
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
						VolumeMounts:    mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}, append(b.opts, pulumi.DependsOn(dependsOn))...)
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
