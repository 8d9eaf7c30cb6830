package components

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Settings are the choices of a release that an update cannot change while it runs: what holds
// the data, and what every pod, sentinel and client has agreed on. Everything else changes in
// place or rolls the pods one at a time. A program records them after each update (the stacks
// export them) and hands the recorded ones to CheckChange before the next.
type Settings struct {
	// Topology is the kind of release, TopologySentinel or TopologyCluster. Settings recorded
	// before RedisCluster existed have none: theirs was a RedisSentinel (see topologyOf).
	Topology string `json:"topology"`
	// Engine is EngineRedis or EngineValkey; settings recorded before Valkey was supported have
	// none, and ran Redis (see engineOf).
	Engine          string `json:"engine,omitempty"`
	Name            string `json:"name"`
	Namespace       string `json:"namespace"`
	CreateNamespace bool   `json:"createNamespace"`
	Cloud           string `json:"cloud"`
	ClusterDomain   string `json:"clusterDomain"`
	MasterSetName   string `json:"masterSetName"`
	Ephemeral       bool   `json:"ephemeral"`
	StorageClass    string `json:"storageClass"`
	StorageSize     string `json:"storageSize"`
	// TLS is whether every connection is TLS; settings recorded before TLS existed have false.
	TLS bool `json:"tls,omitempty"`
	// TLSSource is where the certificate comes from, with TLS (TLSArgs.source).
	TLSSource string `json:"tlsSource,omitempty"`
	// ReplicasPerShard of a RedisCluster: every pod's shard follows from it. Zero for a RedisSentinel.
	ReplicasPerShard int `json:"replicasPerShard,omitempty"`
	// PasswordFingerprint tells passwords apart without revealing them (PasswordFingerprint);
	// GeneratedPassword when the component generated it. Keep these settings as a secret.
	PasswordFingerprint string `json:"passwordFingerprint"`
	// PreviousPasswordFingerprint is the previous password's during a rotation, else empty.
	PreviousPasswordFingerprint string `json:"previousPasswordFingerprint,omitempty"`
	// MonitorPasswordFingerprint is the user monitor's (GeneratedPassword when generated); empty
	// in the settings of a version without that user.
	MonitorPasswordFingerprint string `json:"monitorPasswordFingerprint,omitempty"`
}

// Passwords are a release's passwords as given to it: "" for one that the component generates
// (Password, Monitor) or that there is none of (Previous).
type Passwords struct {
	Password, Previous, Monitor string
}

// GeneratedPassword is the fingerprint of a password that the component generates: it never
// changes after the first update.
const GeneratedPassword = "generated"

// PasswordFingerprint is a digest of a release's password, salted with the release's name and
// namespace so that equal passwords of two releases do not show.
func PasswordFingerprint(namespace, name, password string) string {
	sum := sha256.Sum256([]byte("redis-sentinel password fingerprint\x00" + namespace + "/" + name + "\x00" + password))
	return hex.EncodeToString(sum[:16])
}

// Values of Settings.Topology: the two kinds of release.
const (
	TopologySentinel = "sentinel"
	TopologyCluster  = "cluster"
)

// SettingsOf returns the Settings of a RedisSentinel named name with args a (defaults applied)
// and the given passwords.
func SettingsOf(name string, a RedisSentinelArgs, p Passwords) Settings {
	a = a.WithDefaults(name)
	s := releaseSettings(name, a.ReleaseArgs, p)
	s.Topology = TopologySentinel
	s.Cloud = string(a.Cloud)
	s.MasterSetName = a.MasterSetName
	return s
}

// ClusterSettingsOf returns the Settings of a RedisCluster named name with args a (defaults
// applied) and the given passwords. A RedisCluster has no cloud of its own: a program that
// decides one for it sets Cloud.
func ClusterSettingsOf(name string, a RedisClusterArgs, p Passwords) Settings {
	a = a.WithDefaults(name)
	s := releaseSettings(name, a.ReleaseArgs, p)
	s.Topology = TopologyCluster
	s.ReplicasPerShard = a.ReplicasPerShard
	return s
}

// releaseSettings returns the Settings that both kinds of release have, of defaulted args r.
func releaseSettings(name string, r ReleaseArgs, p Passwords) Settings {
	fingerprint := func(password, none string) string {
		if password == "" {
			return none
		}
		return PasswordFingerprint(r.Namespace, name, password)
	}
	return Settings{
		Engine: string(r.Engine), Name: name, Namespace: r.Namespace, CreateNamespace: r.CreateNamespace, ClusterDomain: r.ClusterDomain,
		Ephemeral: r.Ephemeral, StorageClass: r.StorageClass, StorageSize: r.StorageSize,
		TLS: r.TLS.Enabled, TLSSource: r.TLS.source(),
		PasswordFingerprint:         fingerprint(p.Password, GeneratedPassword),
		PreviousPasswordFingerprint: fingerprint(p.Previous, ""),
		MonitorPasswordFingerprint:  fingerprint(p.Monitor, GeneratedPassword),
	}
}

// topologyOf is the topology of recorded settings; those of a version without RedisCluster have
// none, and were a RedisSentinel's: they must not read as a change of topology.
func topologyOf(s Settings) string {
	if s.Topology == "" {
		return TopologySentinel
	}
	return s.Topology
}

// engineOf is the engine of recorded settings; those of a version without Valkey have none.
func engineOf(s Settings) string {
	if s.Engine == "" {
		return string(EngineRedis)
	}
	return s.Engine
}

// ChangeError refuses the change of one setting of a running release: what it would break, and
// the safe way to get there.
type ChangeError struct {
	Field, From, To string
	Why, Instead    string
}

func (e *ChangeError) Error() string {
	return fmt.Sprintf("%s: changing %s to %s is refused on a running release: %s; instead, %s", e.Field, e.From, e.To, e.Why, e.Instead)
}

// newRelease is the migration for the settings that only a second release can change.
const newRelease = "deploy a second release with the new value next to this one, copy the data over (make its master a replica of this one with REPLICAOF, then promote it), move the clients, and remove this release"

// newCluster is newRelease for a RedisCluster, whose nodes cannot replicate another release's.
const newCluster = "deploy a second release with the new value next to this one, copy every key over (SCAN and DUMP each master of this release, RESTORE through a cluster-aware client of the new one), move the clients, and remove this release"

// CheckChange reports every change from previous (what the last update recorded) to next that
// an update cannot make without deleting data or taking every pod down; nil when there is none.
func CheckChange(previous, next Settings) error {
	var errs []error
	refuse := func(field string, from, to any, why, instead string) {
		errs = append(errs, &ChangeError{Field: field, From: fmt.Sprintf("%q", fmt.Sprint(from)), To: fmt.Sprintf("%q", fmt.Sprint(to)), Why: why, Instead: instead})
	}
	if from, to := topologyOf(previous), topologyOf(next); from != to {
		refuse("topology", from, to, "a Sentinel release and a Redis Cluster hold their data in different shapes (one master, or slots spread over shards), and their clients speak different protocols",
			"deploy a release of the new topology next to this one (another name or another stack), copy every key over, move the clients (a cluster needs cluster-aware ones), and remove this release")
		// The other settings belong to different kinds of release; comparing them would only
		// repeat that this is a new release.
		return errors.Join(errs...)
	}
	// A cluster's nodes cannot replicate another release's: its data moves key by key.
	migration := newRelease
	if topologyOf(next) == TopologyCluster {
		migration = newCluster
	}
	if previous.Name != next.Name {
		refuse("name", previous.Name, next.Name, "every object is named after it, so the release and its volumes would be deleted and an empty one created", migration)
	}
	if previous.Namespace != next.Namespace {
		refuse("namespace", previous.Namespace, next.Namespace, "the volumes stay in the old namespace, so the release would start empty in the new one", migration)
	}
	if previous.CreateNamespace != next.CreateNamespace {
		refuse("createNamespace", previous.CreateNamespace, next.CreateNamespace, "the release would delete its namespace, and the volumes with it, or create one that exists",
			"keep it (a release in a namespace of its own keeps owning it)")
	}
	if previous.Cloud != next.Cloud {
		refuse("cloud", previous.Cloud, next.Cloud, "it decides the cluster and the load balancer the release runs on", "create the release as a new stack on the other cloud and move the data as for a new release: "+migration)
	}
	if previous.ClusterDomain != next.ClusterDomain {
		refuse("clusterDomain", previous.ClusterDomain, next.ClusterDomain, "every pod knows its peers by names in this domain, and pods not yet rolled would lose them", migration)
	}
	if previous.MasterSetName != next.MasterSetName {
		refuse("masterSetName", previous.MasterSetName, next.MasterSetName, "sentinels of rolled and of not yet rolled pods would watch different master sets, and clients ask for the old one", migration)
	}
	switch {
	case previous.Ephemeral != next.Ephemeral:
		refuse("ephemeral", previous.Ephemeral, next.Ephemeral, "it moves the data between volume claims and emptyDirs, and the pods would start without it", migration)
	case previous.Ephemeral:
	case previous.StorageClass != next.StorageClass:
		refuse("storageClass", previous.StorageClass, next.StorageClass, "Kubernetes cannot change the class of a bound volume", "keep the class, or "+migration)
	default:
		from, errFrom := resource.ParseQuantity(previous.StorageSize)
		to, errTo := resource.ParseQuantity(next.StorageSize)
		if errFrom == nil && errTo == nil && to.Cmp(from) < 0 {
			refuse("storageSize", previous.StorageSize, next.StorageSize, "Kubernetes cannot shrink a volume", fmt.Sprintf("keep %s or more (a larger size grows the volumes in place)", previous.StorageSize))
		}
	}
	// Valkey reads what Redis 7.2 wrote, so a rolling update moves a release to it; Redis cannot
	// read what Valkey 8 and later write, so replicas still on Redis could not sync from a Valkey
	// master, and the pods would not start from their own files.
	if from, to := engineOf(previous), engineOf(next); from == string(EngineValkey) && to != from {
		refuse("engine", from, to, "Redis cannot load the RDB and AOF files that Valkey writes, so the pods would not start from their data and replicas could not sync",
			"deploy a Redis release next to this one and copy every key with a client that reads and writes the values (not REPLICAOF, DUMP or RESTORE: they carry Valkey's file format), move the clients, and remove this release")
	}
	if previous.TLS != next.TLS {
		refuse("tls", previous.TLS, next.TLS, "a server listens either for TLS or for plain text on its port: pods already rolled could not replicate from, or be watched by, those not yet rolled, and every client would be refused until it switched",
			migration)
	}
	if previous.TLS && next.TLS && previous.TLSSource != next.TLSSource {
		refuse(tlsSourceKey(previous.TLSSource, next.TLSSource), previous.TLSSource, next.TLSSource, "another source is another CA: pods rolled onto the new certificate could not verify the peers not yet rolled, nor clients the servers",
			"keep the source and renew the certificate within it; to move to another CA, first make the current certificate's ca.crt hold both CAs and let clients trust both, or "+migration)
	}
	if previous.ReplicasPerShard != next.ReplicasPerShard {
		refuse("replicasPerShard", previous.ReplicasPerShard, next.ReplicasPerShard, "the pods form groups of 1 + replicasPerShard consecutive ordinals, one group per shard: a new value regroups them, so running nodes would serve shards their group no longer names, and pods added or re-created would join the wrong shard",
			migration)
	}
	if err := checkRotation(previous, next); err != nil {
		errs = append(errs, err)
	}
	if from, to := previous.MonitorPasswordFingerprint, next.MonitorPasswordFingerprint; from != "" && from != to {
		refuse("monitorPassword", "(a secret)", "(another secret)", "HAProxy's checks and the exporters log in with it: the credentials Job would change it on the servers before HAProxy's pods had rolled onto it, and HAProxy would find no master until they had",
			"keep it")
	}
	return errors.Join(errs...)
}

// tlsSourceKey is the configuration key that changed between two sources of the certificate
// (TLSArgs.source): the Secret's name where one of them is a Secret, else the issuer's name, or
// its kind where only that differs.
func tlsSourceKey(from, to string) string {
	switch {
	case strings.HasPrefix(from, "secret ") || strings.HasPrefix(to, "secret "):
		return "tlsSecretName"
	case strings.HasPrefix(from, "cert-manager ") && strings.HasPrefix(to, "cert-manager ") &&
		from[strings.LastIndex(from, " "):] == to[strings.LastIndex(to, " "):]:
		return "tlsIssuerKind"
	}
	return "tlsIssuerName"
}

// checkRotation allows a change of the clients' password only as the steps of a rotation, each of
// which leaves every server accepting the password that every peer authenticates with
// (credentials.sh): begin (password new, previousPassword the old one), end (previousPassword
// removed) or go back (password the old one again, previousPassword removed).
func checkRotation(previous, next Settings) error {
	was, wasBefore := previous.PasswordFingerprint, previous.PreviousPasswordFingerprint
	is, isBefore := next.PasswordFingerprint, next.PreviousPasswordFingerprint
	if was == is && wasBefore == isBefore {
		return nil
	}
	switch {
	case wasBefore == "" && isBefore != "" && (isBefore == was || was == GeneratedPassword):
		// Begin. A generated password has no fingerprint to hold previousPassword to; the
		// credentials Job then finds out: no server accepts a wrong one, and the Job fails
		// before any server changed.
		return nil
	case wasBefore != "" && isBefore == "" && (is == was || is == wasBefore):
		return nil // end, or go back
	}
	change := &ChangeError{Field: "password", From: `"(a secret)"`, To: `"(another secret)"`,
		Why:     "clients and pods that still use the old password would be refused at once, and pods restarted with the new one could not replicate from the others",
		Instead: "rotate in two steps, each with pulumi up: set password to the new one and previousPassword to the old one (both are accepted then; move the clients), then remove previousPassword (README: rotating the password)"}
	if wasBefore != "" {
		change.Field, change.Instead = "previousPassword", "finish the rotation under way first: remove previousPassword (keeping password), or go back (password the old one, no previousPassword)"
	}
	return change
}
