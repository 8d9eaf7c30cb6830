package components

import (
	"encoding/base64"
	"fmt"
	"path"
	"strconv"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"
)

// builder carries what every child of a release needs while a component registers them, and
// registers the parts that RedisSentinel and RedisCluster share.
type builder struct {
	ctx     *pulumi.Context
	release ReleaseArgs
	names   names
	// app is the value of the app.kubernetes.io/name label: which kind of release this is.
	app  string
	opts []pulumi.ResourceOption
	// The Secret and the redis pods' ConfigMap. The pods name them with plain strings, known in
	// a preview, and depend on the resources for the order of creation. A name taken from an
	// output would be unknown while its object is replaced, and with it the pod template, which
	// makes the engine replace the StatefulSet: every pod down at once.
	secret, redisConfig pulumi.Resource
	redisConfigName     string
	// credentials is every password of the Secret in one secret value: a change of it runs the
	// credentials Job again.
	credentials pulumi.StringOutput
	// With TLS, the Secret that holds the certificate, and what creates it (nil for a user's).
	tlsSecretName string
	tlsSource     pulumi.Resource
}

// NamespaceLabels are the labels of the namespace a release creates (CreateNamespace): they enforce
// the "restricted" Pod Security Standard. A user who makes the namespace instead, to put a
// certificate's Secret in it first, gives it the same.
func NamespaceLabels() map[string]string {
	return map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
}

// newBuilder registers what every release starts with, as children of component: the namespace
// when asked for, the Secret, with TLS the certificate for the release's services, the redis
// pods' ConfigMap (redisFiles, content-addressed) and the ServiceAccount.
func newBuilder(ctx *pulumi.Context, component pulumi.Resource, n names, app string, r ReleaseArgs, services []string, redisFiles map[string]string) (*builder, error) {
	b := &builder{ctx: ctx, release: r, names: n, app: app, opts: []pulumi.ResourceOption{pulumi.Parent(component)}}
	if r.CreateNamespace {
		ns, err := corev1.NewNamespace(ctx, n.base+"-namespace", &corev1.NamespaceArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name:   pulumi.String(r.Namespace),
				Labels: pulumi.ToStringMap(NamespaceLabels()),
			},
		}, pulumi.Parent(component))
		if err != nil {
			return nil, err
		}
		b.opts = append(b.opts, pulumi.DependsOn([]pulumi.Resource{ns}))
	}
	var err error
	if b.secret, err = b.newSecret(); err != nil {
		return nil, err
	}
	if r.TLS.Enabled {
		if b.tlsSecretName, b.tlsSource, err = b.tlsSecret(services); err != nil {
			return nil, err
		}
	}
	b.redisConfigName = contentName(n.config, redisFiles)
	if b.redisConfig, err = b.configMap(n.config, b.redisConfigName, componentRedis, redisFiles); err != nil {
		return nil, err
	}
	if _, err := corev1.NewServiceAccount(ctx, n.serviceAccount, &corev1.ServiceAccountArgs{
		Metadata:                     b.meta(n.serviceAccount, b.labels(componentRedis)),
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, b.opts...); err != nil {
		return nil, err
	}
	return b, nil
}

// configMap registers one of the release's ConfigMaps under its content-addressed name. Its
// Pulumi name is the fixed prefix: a new digest is a replacement of the same resource, which the
// engine does create-before-delete (the Kubernetes names differ), and it deletes the old object
// at the end of the update, once the pods have rolled onto the new one.
func (b *builder) configMap(resourceName, name, component string, files map[string]string) (pulumi.Resource, error) {
	return corev1.NewConfigMap(b.ctx, resourceName, &corev1.ConfigMapArgs{
		Metadata:  b.meta(name, b.labels(component)),
		Data:      pulumi.ToStringMap(files),
		Immutable: pulumi.Bool(true),
	}, b.opts...)
}

// newSecret registers the Secret with the passwords: the clients' (generated when none is
// given), the previous one while a rotation is under way, and the user monitor's (generated
// when none is given).
func (b *builder) newSecret() (pulumi.Resource, error) {
	password, err := b.passwordOrGenerated(b.release.Password, "-password")
	if err != nil {
		return nil, err
	}
	monitor, err := b.passwordOrGenerated(b.release.MonitorPassword, "-monitor-password")
	if err != nil {
		return nil, err
	}
	data := pulumi.StringMap{passwordKey: password, monitorPasswordKey: monitor}
	if b.release.PreviousPassword != nil {
		data[previousPasswordKey] = b.release.PreviousPassword
	}
	// The credentials Job runs again whenever a password changes (credentialsJob).
	previous := b.release.PreviousPassword
	if previous == nil {
		previous = pulumi.String("")
	}
	b.credentials = pulumi.ToSecret(pulumi.All(password, monitor, previous).ApplyT(func(values []any) string {
		return fmt.Sprintf("%s\x00%s\x00%s", values...)
	})).(pulumi.StringOutput)

	return b.patchedSecret(b.names.secret, "Opaque", data)
}

// patchedSecret registers a Secret of the release named name whose data changes in place.
//
// The kubernetes provider replaces a Secret whose data changes, delete first since its name is
// fixed (seen under the real engine), and a pod starting in between would not start; a program
// may not set the provider's enableSecretMutable. So, as the cluster's topology ConfigMap: one
// resource only creates the Secret (and keeps a release of an earlier version, whose Secret had
// fewer keys, from being replaced), and a server-side apply patch holds its data, in place. The
// patch writes data, not stringData: the API server tracks who owns each key of data, so a key
// the patch drops (previous-password) is removed. It returns the patch.
func (b *builder) patchedSecret(name, secretType string, data pulumi.StringMap) (pulumi.Resource, error) {
	secret, err := corev1.NewSecret(b.ctx, name, &corev1.SecretArgs{
		Metadata:   b.meta(name, b.labels(componentRedis)),
		Type:       pulumi.String(secretType),
		StringData: data,
	}, append(b.opts, pulumi.IgnoreChanges([]string{"stringData", "data"}))...)
	if err != nil {
		return nil, err
	}
	encoded := pulumi.StringMap{}
	for key, value := range data {
		encoded[key] = value.ToStringOutput().ApplyT(func(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }).(pulumi.StringOutput)
	}
	return corev1.NewSecretPatch(b.ctx, name, &corev1.SecretPatchArgs{
		Metadata: &metav1.ObjectMetaPatchArgs{
			Name: pulumi.String(name), Namespace: pulumi.String(b.release.Namespace),
			// The Secret resource created the data and owns it as a field manager: without force
			// the API server refuses the new values as a conflict.
			Annotations: pulumi.StringMap{"pulumi.com/patchForce": pulumi.String("true")},
		},
		Data: encoded,
	}, append(b.opts, pulumi.DependsOn([]pulumi.Resource{secret}))...)
}

// passwordOrGenerated is given, or else a password generated under the resource name base+suffix.
func (b *builder) passwordOrGenerated(given pulumi.StringInput, suffix string) (pulumi.StringInput, error) {
	if given != nil {
		return given, nil
	}
	generated, err := random.NewRandomPassword(b.ctx, b.names.base+suffix, &random.RandomPasswordArgs{
		Length: pulumi.Int(32),
		// Letters and digits only: HAProxy's health checks send the monitor password in an
		// inline AUTH command, where a space or a quote would break it.
		Special: pulumi.Bool(false),
	}, b.opts...)
	if err != nil {
		return nil, err
	}
	return generated.Result, nil
}

// The keys of the Secret, which the pods mount at authDir (common.sh reads them).
const (
	passwordKey         = "password"
	previousPasswordKey = "previous-password"
	monitorPasswordKey  = "monitor-password"
	// monitorUser is the user that HAProxy's checks and the exporter log in as.
	monitorUser = "monitor"
)

// Values of the app.kubernetes.io/name label: which kind of release an object belongs to.
const (
	appSentinel = "redis-sentinel"
	appCluster  = "redis-cluster"
)

// Values of the app.kubernetes.io/component label.
const (
	componentRedis   = "redis"
	componentHAProxy = "haproxy"
)

// selector selects the pods of one component of this release; it is also part of their labels.
func (b *builder) selector(component string) pulumi.StringMap {
	return pulumi.StringMap{
		"app.kubernetes.io/name":      pulumi.String(b.app),
		"app.kubernetes.io/instance":  pulumi.String(b.names.base),
		"app.kubernetes.io/component": pulumi.String(component),
	}
}

// labels are the labels of every object of one component: the selector plus part-of and managed-by.
func (b *builder) labels(component string) pulumi.StringMap {
	labels := b.selector(component)
	labels["app.kubernetes.io/part-of"] = pulumi.String("redis-sentinel")
	labels["app.kubernetes.io/managed-by"] = pulumi.String("pulumi")
	return labels
}

func (b *builder) meta(name string, labels pulumi.StringMap) *metav1.ObjectMetaArgs {
	return &metav1.ObjectMetaArgs{
		Name:      pulumi.String(name),
		Namespace: pulumi.String(b.release.Namespace),
		Labels:    labels,
	}
}

// resizeClaims holds every pod's claim at StorageSize with a server-side apply patch, so that a
// larger storageSize grows the existing volumes in place (the StorageClass must allow expansion).
// The patches wait for the StatefulSet, whose controller creates the claims. Shrinking is refused
// before this (CheckChange): Kubernetes cannot shrink a volume.
func (b *builder) resizeClaims(sts pulumi.Resource, pods int) error {
	for i := 0; i < pods; i++ {
		claim := fmt.Sprintf("%s-%s-%d", volumeData, b.names.base, i)
		if _, err := corev1.NewPersistentVolumeClaimPatch(b.ctx, claim, &corev1.PersistentVolumeClaimPatchArgs{
			Metadata: &metav1.ObjectMetaPatchArgs{
				Name: pulumi.String(claim), Namespace: pulumi.String(b.release.Namespace),
				// The StatefulSet controller created the claim and owns its size; without force the
				// API server refuses a new size as a conflict of field managers. No await: the
				// provider waits for a claim of a WaitForFirstConsumer class (GKE's and EKS's
				// defaults) to be Pending, and this one is Bound already, so every update hung five
				// minutes and failed (seen on the real node); the StatefulSet's await covers the pods.
				Annotations: pulumi.StringMap{
					"pulumi.com/patchForce": pulumi.String("true"),
					"pulumi.com/skipAwait":  pulumi.String("true"),
				},
			},
			Spec: &corev1.PersistentVolumeClaimSpecPatchArgs{
				Resources: &corev1.VolumeResourceRequirementsPatchArgs{
					Requests: pulumi.StringMap{"storage": pulumi.String(b.release.StorageSize)},
				},
			},
		}, append(b.opts, pulumi.DependsOn([]pulumi.Resource{sts}))...); err != nil {
			return err
		}
	}
	return nil
}

// exporter is the redis_exporter sidecar: it reads the local redis only, and serves /metrics.
// One per pod is enough: each redis reports its role, replication and lag itself, and Sentinel's
// view (which master, how many sentinels agree) shows in HAProxy's /master; a second exporter
// on the sentinel port would double the sidecars for little that redis's own metrics miss.
func (b *builder) exporter() corev1.ContainerArgs {
	args := []string{
		"--redis.addr=redis://localhost:" + strconv.Itoa(RedisPort),
		"--web.listen-address=:" + strconv.Itoa(MetricsPort),
	}
	var mounts corev1.VolumeMountArray
	if b.release.TLS.Enabled {
		// localhost is one of the certificate's names (certificateNames): the exporter checks it.
		args[0] = "--redis.addr=rediss://localhost:" + strconv.Itoa(RedisPort)
		args = append(args, "--tls-ca-cert-file="+path.Join(tlsDir, tlsCAKey))
		mounts = corev1.VolumeMountArray{tlsMount()}
	}
	return corev1.ContainerArgs{
		Name:  pulumi.String("metrics"),
		Image: b.release.MetricsImage,
		// Explicit, so that the binary of another packaging (Debian's prometheus-redis-exporter)
		// can run the same arguments. Every flag here exists since v1.0.
		Command:      pulumi.ToStringArray([]string{"/redis_exporter"}),
		Args:         pulumi.ToStringArray(args),
		VolumeMounts: mounts,
		Ports:        corev1.ContainerPortArray{containerPort(metricsPortName, MetricsPort)},
		Env: corev1.EnvVarArray{
			envVar("REDIS_USER", monitorUser),
			corev1.EnvVarArgs{Name: pulumi.String("REDIS_PASSWORD"), ValueFrom: b.secretRef(monitorPasswordKey)},
			// /scrape?target=... would dial any address a caller names and authenticate with this
			// password. An environment variable rather than a flag: exporters older than v1.83.0
			// ignore it instead of refusing to start.
			envVar("REDIS_EXPORTER_DISABLE_SCRAPE_ENDPOINT", "true"),
		},
		Resources: resources("10m", "32Mi", "64Mi"),
		// No readiness probe: the pod's readiness is redis's, and a slow exporter must not take
		// a healthy redis out of its Services or count against its disruption budget.
		LivenessProbe: &corev1.ProbeArgs{
			HttpGet:       &corev1.HTTPGetActionArgs{Path: pulumi.String("/health"), Port: pulumi.String(metricsPortName)},
			PeriodSeconds: pulumi.Int(10), TimeoutSeconds: pulumi.Int(5),
		},
		SecurityContext: restrictedContainer(),
	}
}

// secretRef reads a key of the Secret into an environment variable.
func (b *builder) secretRef(key string) *corev1.EnvVarSourceArgs {
	return &corev1.EnvVarSourceArgs{SecretKeyRef: &corev1.SecretKeySelectorArgs{
		Name: pulumi.String(b.names.secret), Key: pulumi.String(key),
	}}
}

// authVolume is the Secret as files, for the scripts: unlike an environment variable, a file
// follows a change of the Secret in a running pod, which a rotation needs (common.sh). Only
// the pod's user and group may read them.
func (b *builder) authVolume() corev1.VolumeArgs {
	return corev1.VolumeArgs{Name: pulumi.String(volumeAuth), Secret: &corev1.SecretVolumeSourceArgs{
		SecretName: pulumi.String(b.names.secret), DefaultMode: pulumi.Int(0o440),
	}}
}

// scriptVolumes are what every pod that runs the scripts (the redis pods, the Jobs) mounts
// with scriptMounts: the content-addressed ConfigMap, the Secret, and with TLS the certificate.
func (b *builder) scriptVolumes() corev1.VolumeArray {
	volumes := corev1.VolumeArray{
		corev1.VolumeArgs{Name: pulumi.String(volumeConfig), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: pulumi.String(b.redisConfigName)}},
		b.authVolume(),
	}
	if b.release.TLS.Enabled {
		volumes = append(volumes, b.tlsVolume())
	}
	return volumes
}

func (b *builder) scriptMounts() corev1.VolumeMountArray {
	mounts := corev1.VolumeMountArray{
		corev1.VolumeMountArgs{Name: pulumi.String(volumeConfig), MountPath: pulumi.String(templateDir), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String(volumeAuth), MountPath: pulumi.String(authDir), ReadOnly: pulumi.Bool(true)},
	}
	if b.release.TLS.Enabled {
		mounts = append(mounts, tlsMount())
	}
	return mounts
}

func tmpMount() corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(volumeTmp), MountPath: pulumi.String("/tmp")}
}

// separateNodes keeps every pod of a component on a node of its own: a required anti-affinity.
// A topology spread over nodes cannot promise that: with maxSkew 1 it still puts two of three
// pods on one of two nodes, and one node's loss then takes the majority. A pod with no free node
// stays Pending rather than share one. With ShareNodes (fewer nodes than pods, such as a single
// node for development) the anti-affinity is only preferred.
func (b *builder) separateNodes(component string) *corev1.AffinityArgs {
	term := corev1.PodAffinityTermArgs{
		LabelSelector: &metav1.LabelSelectorArgs{MatchLabels: b.selector(component)},
		TopologyKey:   pulumi.String("kubernetes.io/hostname"),
	}
	anti := &corev1.PodAntiAffinityArgs{}
	if b.release.ShareNodes {
		anti.PreferredDuringSchedulingIgnoredDuringExecution = corev1.WeightedPodAffinityTermArray{
			corev1.WeightedPodAffinityTermArgs{Weight: pulumi.Int(100), PodAffinityTerm: term},
		}
	} else {
		anti.RequiredDuringSchedulingIgnoredDuringExecution = corev1.PodAffinityTermArray{term}
	}
	return &corev1.AffinityArgs{PodAntiAffinity: anti}
}

// acrossZones spreads the pods of a component over zones when it can. Only preferred: a zone
// without a free node, or a cluster without zone labels, must not keep a pod from starting.
// Tainted (for example cordoned) nodes do not count, so that a drained node's zone does not
// hold the skew.
func (b *builder) acrossZones(component string) corev1.TopologySpreadConstraintArray {
	return corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
		MaxSkew:           pulumi.Int(1),
		TopologyKey:       pulumi.String("topology.kubernetes.io/zone"),
		WhenUnsatisfiable: pulumi.String("ScheduleAnyway"),
		NodeTaintsPolicy:  pulumi.String("Honor"),
		LabelSelector:     &metav1.LabelSelectorArgs{MatchLabels: b.selector(component)},
	}}
}

// serviceMonitor registers, when asked for, the Prometheus Operator ServiceMonitor that scrapes
// every exporter through the headless Service. The sentinels' Service carries the same labels but
// no metrics port, so it adds no targets.
func (b *builder) serviceMonitor() error {
	if b.release.DisableMetrics || !b.release.ServiceMonitor {
		return nil
	}
	_, err := apiextensions.NewCustomResource(b.ctx, b.names.serviceMonitor, &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String("monitoring.coreos.com/v1"),
		Kind:       pulumi.String("ServiceMonitor"),
		Metadata:   b.meta(b.names.serviceMonitor, b.labels(componentRedis)),
		OtherFields: kubernetes.UntypedArgs{
			"spec": pulumi.Map{
				"selector": pulumi.Map{"matchLabels": b.selector(componentRedis)},
				"endpoints": pulumi.Array{pulumi.Map{
					"port": pulumi.String(metricsPortName),
					"path": pulumi.String("/metrics"),
				}},
			},
		},
	}, b.opts...)
	return err
}

// podEnv is the environment of a release's redis pods: what every script needs, with the kind's
// own variables (kindVars) in the middle.
func (b *builder) podEnv(kindVars ...corev1.EnvVarArgs) corev1.EnvVarArray {
	domain := peerDomain(b.names, b.release)
	env := corev1.EnvVarArray{
		corev1.EnvVarArgs{Name: pulumi.String("POD_NAME"), ValueFrom: &corev1.EnvVarSourceArgs{
			FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.name")},
		}},
		// Kubernetes expands $(POD_NAME): the pod's stable name under the headless Service.
		envVar("POD_FQDN", "$(POD_NAME)."+domain),
		envVar("PEER_DOMAIN", domain),
	}
	for _, v := range kindVars {
		env = append(env, v)
	}
	env = append(env,
		envVar("TEMPLATE_DIR", templateDir),
		envVar("RUN_DIR", runDir),
		envVar("DATA_DIR", dataDir),
		envVar("PRESTOP_DEADLINE_SECONDS", strconv.Itoa(preStopDeadlineSeconds)),
	)
	return append(env, b.serverEnv()...)
}

// serverEnv is what every script needs to run the engine's programs: their names, where the
// passwords are (authVolume), and with TLS where the certificate is (common.sh's TLS_FLAGS).
func (b *builder) serverEnv() corev1.EnvVarArray {
	server, cli := b.release.Engine.programs()
	env := corev1.EnvVarArray{
		envVar("SERVER_BIN", server),
		envVar("CLI_BIN", cli),
		envVar("AUTH_DIR", authDir),
	}
	if b.release.TLS.Enabled {
		env = append(env, envVar("TLS_DIR", tlsDir))
	}
	return env
}

// scriptCommand runs one of the ConfigMap's scripts.
func scriptCommand(name string, args ...string) pulumi.StringArray {
	return pulumi.ToStringArray(append([]string{"sh", path.Join(templateDir, name)}, args...))
}

// execProbe runs a probe script in one of its modes.
func execProbe(script, mode string, period, failures int) *corev1.ProbeArgs {
	return &corev1.ProbeArgs{
		Exec:             &corev1.ExecActionArgs{Command: scriptCommand(script, mode)},
		PeriodSeconds:    pulumi.Int(period),
		TimeoutSeconds:   pulumi.Int(5),
		FailureThreshold: pulumi.Int(failures),
	}
}

func preStop(script string) *corev1.LifecycleArgs {
	return &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{Exec: &corev1.ExecActionArgs{Command: scriptCommand(script)}}}
}

// podMounts are the redis pods' mounts: the ConfigMap, the Secret, the run and tmp directories,
// and the data.
func (b *builder) podMounts(withData bool) corev1.VolumeMountArray {
	m := append(b.scriptMounts(),
		corev1.VolumeMountArgs{Name: pulumi.String(volumeRun), MountPath: pulumi.String(runDir)},
		tmpMount(),
	)
	if withData {
		m = append(m, corev1.VolumeMountArgs{Name: pulumi.String(volumeData), MountPath: pulumi.String(dataDir)})
	}
	return m
}

// redisStatefulSet registers the StatefulSet of a release's redis pods: replicas pods running
// containers (and the exporter), with the shared volumes plus more, and grows their claims.
func (b *builder) redisStatefulSet(replicas int, containers corev1.ContainerArray, more corev1.VolumeArray, dependsOn ...pulumi.Resource) (pulumi.Resource, error) {
	a, n := b.release, b.names
	volumes := append(b.scriptVolumes(),
		// The configs the start scripts render here hold the password: tmpfs keeps it off the
		// node's disk, where a disk-backed emptyDir would leave it after the pod is gone. They
		// are a few kilobytes (Sentinel's rewritten config grows by a line per peer); the pages
		// count against the memory limit of the container that writes them.
		corev1.VolumeArgs{Name: pulumi.String(volumeRun), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{
			Medium: pulumi.String("Memory"), SizeLimit: pulumi.String("1Mi"),
		}},
		emptyDir(volumeTmp),
	)
	volumes = append(volumes, more...)
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

	if !a.DisableMetrics {
		containers = append(containers, b.exporter())
	}

	sts, err := appsv1.NewStatefulSet(b.ctx, n.base, &appsv1.StatefulSetArgs{
		Metadata: b.meta(n.base, b.labels(componentRedis)),
		Spec: &appsv1.StatefulSetSpecArgs{
			Replicas:    pulumi.Int(replicas),
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
					// which holds nothing that the container lacks: all run as the same user and
					// mount the same Secret (the exporter's environment holds the monitor password,
					// which every server container reads from that Secret too).
					ShareProcessNamespace: pulumi.Bool(true),
				},
			},
			VolumeClaimTemplates: claims,
		},
	}, append(b.opts,
		pulumi.DependsOn(append(b.podDependencies(), dependsOn...)),
		// Kubernetes refuses any change of volumeClaimTemplates, so the provider would replace
		// the StatefulSet: every pod deleted at once. The claims are what a template change
		// should reach; resizeClaims grows them, and CheckChange refuses every other change.
		pulumi.IgnoreChanges([]string{"spec.volumeClaimTemplates"}),
	)...)
	if err != nil || a.Ephemeral {
		return sts, err
	}
	return sts, b.resizeClaims(sts, replicas)
}

// podDependencies are what the pods that run the scripts mount: the Secret, the ConfigMap and
// with TLS what creates the certificate's Secret.
func (b *builder) podDependencies() []pulumi.Resource {
	deps := []pulumi.Resource{b.secret, b.redisConfig}
	if b.tlsSource != nil {
		deps = append(deps, b.tlsSource)
	}
	return deps
}

// disruptionBudget lets one pod of a component be down at a time.
func (b *builder) disruptionBudget(name, component string) error {
	_, err := policyv1.NewPodDisruptionBudget(b.ctx, name, &policyv1.PodDisruptionBudgetArgs{
		Metadata: b.meta(name, b.labels(component)),
		Spec: &policyv1.PodDisruptionBudgetSpecArgs{
			MaxUnavailable: pulumi.Int(1),
			Selector:       &metav1.LabelSelectorArgs{MatchLabels: b.selector(component)},
			// A pod that is not Ready (crash-looping, a bad image, a replica that cannot sync)
			// already counts as unavailable. With the default, IfHealthyBudget, it could only be
			// evicted while the budget still had room, so it blocked every node drain and
			// cluster upgrade for as long as it stayed unready. AlwaysAllow lets it go; a
			// Ready pod is still evicted only while currentHealthy stays at or above
			// desiredHealthy, and evicting an unready pod does not lower currentHealthy, so
			// a drain never takes a second healthy pod.
			UnhealthyPodEvictionPolicy: pulumi.String("AlwaysAllow"),
		},
	}, b.opts...)
	return err
}

// networkPolicy admits ingress to the pods of a component by rules only.
func (b *builder) networkPolicy(name, component string, ingress networkingv1.NetworkPolicyIngressRuleArray) error {
	_, err := networkingv1.NewNetworkPolicy(b.ctx, name, &networkingv1.NetworkPolicyArgs{
		Metadata: b.meta(name, b.labels(component)),
		Spec: &networkingv1.NetworkPolicySpecArgs{
			PodSelector: &metav1.LabelSelectorArgs{MatchLabels: b.selector(component)},
			PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
			Ingress:     ingress,
		},
	}, b.opts...)
	return err
}

// clientsPeer is the labelled client pods in any namespace: a bare pod selector would only match
// this namespace, which the release usually has to itself.
func (b *builder) clientsPeer() networkingv1.NetworkPolicyPeerArgs {
	return networkingv1.NetworkPolicyPeerArgs{
		PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(b.release.ClientLabels)},
		NamespaceSelector: &metav1.LabelSelectorArgs{},
	}
}

// scraperRule admits the metrics scraper to the metrics port only; nil without metrics.
func (b *builder) scraperRule() networkingv1.NetworkPolicyIngressRuleInput {
	if b.release.DisableMetrics {
		return nil
	}
	// One peer with both selectors: the scraper's pods in the scraper's namespaces, and only
	// to the metrics port; redis itself stays closed to them.
	scraper := networkingv1.NetworkPolicyPeerArgs{
		PodSelector:       &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(b.release.MetricsScraperPodLabels)},
		NamespaceSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(b.release.MetricsScraperNamespaceLabels)},
	}
	return networkingv1.NetworkPolicyIngressRuleArgs{
		From: networkingv1.NetworkPolicyPeerArray{scraper}, Ports: policyPorts(MetricsPort),
	}
}

func podsPeer(labels pulumi.StringMap) networkingv1.NetworkPolicyPeerArgs {
	return networkingv1.NetworkPolicyPeerArgs{PodSelector: &metav1.LabelSelectorArgs{MatchLabels: labels}}
}

func policyPorts(numbers ...int) networkingv1.NetworkPolicyPortArray {
	var out networkingv1.NetworkPolicyPortArray
	for _, p := range numbers {
		out = append(out, networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(p), Protocol: pulumi.String("TCP")})
	}
	return out
}

// mustQuantity parses a quantity that Validate has accepted.
func mustQuantity(q string) resource.Quantity {
	return resource.MustParse(q)
}

// headlessService registers the headless Service over the redis pods, with ports and the
// exporter's. Pods resolve each other through it before they are ready: a Sentinel release's
// replica is not ready until it has synced from a master it found by name, a cluster node until
// it has a role, which it gets only once it sees every other pod. The metrics port is only here:
// Prometheus scrapes every pod through its endpoints, not yet ready ones included; any other
// Service would list the same pods a second time, or lead to HAProxy, which has no exporter.
func (b *builder) headlessService(ports ...corev1.ServicePortArgs) error {
	all := corev1.ServicePortArray{}
	for _, p := range ports {
		all = append(all, p)
	}
	if !b.release.DisableMetrics {
		all = append(all, servicePort(metricsPortName, MetricsPort))
	}
	return b.service(b.names.headless, componentRedis, &corev1.ServiceSpecArgs{
		ClusterIP:                pulumi.String("None"),
		PublishNotReadyAddresses: pulumi.Bool(true),
		Selector:                 b.selector(componentRedis),
		Ports:                    all,
	})
}

// service registers one Service of a component of the release.
func (b *builder) service(name, component string, spec *corev1.ServiceSpecArgs) error {
	_, err := corev1.NewService(b.ctx, name, &corev1.ServiceArgs{Metadata: b.meta(name, b.labels(component)), Spec: spec}, b.opts...)
	return err
}

// jobSpec is what a Job of the release (job) runs, besides what every one has.
type jobSpec struct {
	name, component string
	// script is one of the ConfigMap's scripts, run with args in the redis image.
	script string
	args   []string
	// env, volumes and mounts come on top of the scripts' environment (serverEnv, a pod name),
	// the ConfigMap, the Secret and /tmp.
	env     corev1.EnvVarArray
	volumes corev1.VolumeArray
	mounts  corev1.VolumeMountArray
	timeout string
}

// job registers a Job of the release after dependsOn (and the Secret and ConfigMap). Pulumi
// waits until it completes: resources that depend on it change only then, and an update whose
// Job fails stops there. Its name is fixed: a new spec (another image, config or setting)
// replaces it, delete first, which a finished Job allows; an unchanged spec does not run it
// again. opts add to the release's options (a replacement trigger).
func (b *builder) job(j jobSpec, dependsOn []pulumi.Resource, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	n := b.names
	env := append(corev1.EnvVarArray{
		// common.sh knows the StatefulSet by the pod's name minus its last part; the Job has no
		// pod name of its own and resolves no name of its own.
		envVar("POD_NAME", n.base+"-job"),
		envVar("POD_FQDN", n.base+"-job"),
		envVar("PEER_DOMAIN", peerDomain(n, b.release)),
		envVar("REDIS_PORT", strconv.Itoa(RedisPort)),
		envVar("TEMPLATE_DIR", templateDir),
		envVar("RUN_DIR", "/tmp"),
	}, j.env...)
	env = append(env, b.serverEnv()...)
	return batchv1.NewJob(b.ctx, j.name, &batchv1.JobArgs{
		Metadata: b.meta(j.name, b.labels(j.component)),
		Spec: &batchv1.JobSpecArgs{
			BackoffLimit: pulumi.Int(3),
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: b.labels(j.component)},
				Spec: &corev1.PodSpecArgs{
					RestartPolicy:                pulumi.String("Never"),
					ServiceAccountName:           pulumi.String(n.serviceAccount),
					AutomountServiceAccountToken: pulumi.Bool(false),
					EnableServiceLinks:           pulumi.Bool(false),
					SecurityContext:              restrictedPod(redisUser),
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String(j.component),
						Image:           b.release.RedisImage,
						Command:         scriptCommand(j.script, j.args...),
						Env:             env,
						Resources:       resources("50m", "64Mi", "128Mi"),
						SecurityContext: restrictedContainer(),
						VolumeMounts:    append(append(b.scriptMounts(), tmpMount()), j.mounts...),
					}},
					Volumes: append(append(b.scriptVolumes(), emptyDir(volumeTmp)), j.volumes...),
				},
			},
		},
	}, append(append(b.opts,
		pulumi.DependsOn(append(b.podDependencies(), dependsOn...)),
		pulumi.Timeouts(&pulumi.CustomTimeouts{Create: j.timeout, Update: j.timeout}),
		// Its name is fixed: the successor cannot exist beside it.
		pulumi.DeleteBeforeReplace(true),
	), opts...)...)
}

// componentCredentials is the app.kubernetes.io/component label of the credentials Job's pod.
const componentCredentials = "credentials"

// credentialsWaitSeconds bounds how long the credentials Job waits for a pod that does not
// answer, or refuses every password, before it fails and stops the update.
const credentialsWaitSeconds = 300

// credentialsJob registers the Job that brings every running server and sentinel to the
// Secret's passwords (credentials.sh), after dependsOn (the StatefulSet). It runs again when a
// password changes, through a replacement trigger: the Secret's data is not part of the Job's
// spec, and a Job's pod template cannot change in place anyway.
func (b *builder) credentialsJob(kindVars corev1.EnvVarArray, dependsOn ...pulumi.Resource) (pulumi.Resource, error) {
	return b.job(jobSpec{
		name: b.names.base + "-" + componentCredentials, component: componentCredentials, script: "credentials.sh",
		env:     append(corev1.EnvVarArray{envVar("CREDENTIALS_WAIT_SECONDS", strconv.Itoa(credentialsWaitSeconds))}, kindVars...),
		timeout: "10m",
	}, dependsOn, pulumi.ReplacementTrigger(b.credentials))
}
