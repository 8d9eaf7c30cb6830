package tests

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/d3ad221e/redis-sentinel/components"
)

const (
	typeCertificate = "kubernetes:cert-manager.io/v1:Certificate"
	tlsMountPath    = "/etc/redis-sentinel-tls"
)

// With TLS every server and sentinel listens for TLS only, on the usual ports, and every link
// between them is TLS; clients need no certificate of their own.
func TestWithTLSEveryServerAndSentinelListensForTLSOnly(t *testing.T) {
	r := mustRunStack(t, map[string]string{"tls": "true"})
	for _, file := range []struct{ name, port string }{{"redis.conf", "6379"}, {"sentinel.conf", "26379"}} {
		conf := r.configFile(file.name)
		assert.Contains(t, conf, "\nport 0\ntls-port "+file.port+"\n", file.name)
		for _, line := range []string{"tls-cert-file " + tlsMountPath + "/tls.crt", "tls-key-file " + tlsMountPath + "/tls.key",
			"tls-ca-cert-file " + tlsMountPath + "/ca.crt", "tls-auth-clients no", "tls-replication yes"} {
			assert.Contains(t, conf, "\n"+line+"\n", file.name)
		}
	}
	plain := mustRunStack(t, nil)
	assert.NotContains(t, plain.configFile("redis.conf"), "tls-")
	assert.Contains(t, plain.configFile("redis.conf"), "\nport 6379\n")
}

// HAProxy passes the clients' TLS through, checks every server and sentinel over TLS against the
// CA and the pod's name, and gets only the CA: no private key.
func TestWithTLSHAProxyChecksOverTLSAndHoldsNoKey(t *testing.T) {
	r := mustRunStack(t, map[string]string{"tls": "true"})
	cfg := r.configFile("haproxy.cfg")
	assert.Equal(t, strings.Count(cfg, "tcp-check connect default\n"), strings.Count(cfg, "tcp-check connect"), "a bare connect would ignore check-ssl")
	assert.Equal(t, strings.Count(cfg, "default-server "), strings.Count(cfg, " check-ssl verify required ca-file "+tlsMountPath+"/ca.crt\n"), "every backend checks over TLS")
	for _, line := range strings.Split(cfg, "\n") {
		if fields := strings.Fields(line); len(fields) >= 3 && fields[0] == "server" {
			host, _, _ := strings.Cut(fields[2], ":")
			assert.Equal(t, []string{"check-sni", host}, fields[3:], "the check verifies the pod's own name: %s", line)
		}
	}
	assert.NotContains(t, cfg, " ssl ", "clients' TLS passes through: HAProxy opens no connection of theirs")

	var haproxy appsv1.Deployment
	r.decode(typeDeployment, "redis-haproxy", &haproxy)
	var tlsVolume *corev1.Volume
	for i, v := range haproxy.Spec.Template.Spec.Volumes {
		if v.Name == "tls" {
			tlsVolume = &haproxy.Spec.Template.Spec.Volumes[i]
		}
	}
	require.NotNil(t, tlsVolume)
	assert.Equal(t, []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}, tlsVolume.Secret.Items)
}

// Every container that talks to a server does it over TLS: the scripts through TLS_DIR, the
// exporter through rediss:// and the CA. The Jobs mount the certificate too.
func TestWithTLSEveryClientOfTheServersSpeaksTLS(t *testing.T) {
	r := mustRunStack(t, map[string]string{"tls": "true"})
	var sts appsv1.StatefulSet
	r.decode(typeStatefulSet, "redis", &sts)
	for _, c := range sts.Spec.Template.Spec.Containers {
		assert.Contains(t, mountPaths(c), tlsMountPath, c.Name)
		switch c.Name {
		case "metrics":
			assert.Contains(t, c.Args, "--redis.addr=rediss://localhost:6379")
			assert.Contains(t, c.Args, "--tls-ca-cert-file="+tlsMountPath+"/ca.crt")
		default:
			assert.Equal(t, tlsMountPath, c.Env[envIndex(c.Env, "TLS_DIR")].Value, c.Name)
		}
	}
	var job batchv1.Job
	r.decode("kubernetes:batch/v1:Job", "redis-credentials", &job)
	c := job.Spec.Template.Spec.Containers[0]
	assert.Contains(t, mountPaths(c), tlsMountPath)
	assert.Equal(t, tlsMountPath, c.Env[envIndex(c.Env, "TLS_DIR")].Value)
}

func mountPaths(c corev1.Container) []string {
	var paths []string
	for _, m := range c.VolumeMounts {
		paths = append(paths, m.MountPath)
	}
	return paths
}

// The certificate comes from exactly one place: the user's Secret (nothing registered), a
// cert-manager Certificate, or a CA and certificate the program generates.
func TestTheCertificateComesFromTheUsersSecretCertManagerOrTheProgram(t *testing.T) {
	secretOf := func(r *release) string {
		var sts appsv1.StatefulSet
		r.decode(typeStatefulSet, "redis", &sts)
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name == "tls" {
				return v.Secret.SecretName
			}
		}
		t.Fatal("no tls volume")
		return ""
	}
	tlsResources := func(r *release) []string {
		var out []string
		for _, res := range r.resources {
			if strings.HasPrefix(res.Type, "tls:") || res.Type == typeCertificate || (res.Type == typeSecret && res.Name == "redis-tls") {
				out = append(out, res.Type+"::"+res.Name)
			}
		}
		return out
	}

	users := mustRunStack(t, map[string]string{"tls": "true", "tlsSecretName": "redis-certs"})
	assert.Equal(t, "redis-certs", secretOf(users))
	assert.Empty(t, tlsResources(users), "the user keeps the Secret")

	managed := mustRunStack(t, map[string]string{"tls": "true", "tlsIssuerName": "internal-ca", "tlsIssuerKind": "ClusterIssuer", "tlsDnsNames": `["redis.example.internal"]`})
	assert.Equal(t, "redis-tls", secretOf(managed))
	assert.Equal(t, []string{typeCertificate + "::redis-tls"}, tlsResources(managed))
	spec := managed.object(typeCertificate, "redis-tls")["spec"].(map[string]any)
	assert.Equal(t, "redis-tls", spec["secretName"])
	assert.Equal(t, map[string]any{"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}, spec["issuerRef"])
	assert.Equal(t, "Always", spec["privateKey"].(map[string]any)["rotationPolicy"], "a renewal makes a new key")
	var dnsNames []string
	for _, name := range spec["dnsNames"].([]any) {
		dnsNames = append(dnsNames, name.(string))
	}
	for _, want := range []string{
		"*.redis-headless.redis.svc.cluster.local", "localhost", "redis-master", "redis-master.redis.svc.cluster.local",
		"redis-sentinel.redis.svc", "redis-master-lb.redis", "redis.example.internal",
	} {
		assert.Contains(t, dnsNames, want, "every name a client or peer uses")
	}

	generated := mustRunStack(t, map[string]string{"tls": "true"})
	assert.Equal(t, "redis-tls", secretOf(generated))
	assert.ElementsMatch(t, []string{
		"tls:index/privateKey:PrivateKey::redis-tls-ca-key", "tls:index/selfSignedCert:SelfSignedCert::redis-tls-ca",
		"tls:index/privateKey:PrivateKey::redis-tls-key", "tls:index/certRequest:CertRequest::redis-tls-request",
		"tls:index/locallySignedCert:LocallySignedCert::redis-tls", typeSecret + "::redis-tls",
	}, tlsResources(generated))
	data := generated.object("kubernetes:core/v1:SecretPatch", "redis-tls")["data"].(map[string]any)
	assert.ElementsMatch(t, []string{"tls.crt", "tls.key", "ca.crt"}, keysOf(data))
	patch := generated.find("kubernetes:core/v1:SecretPatch", "redis-tls")
	assert.True(t, patch.Inputs["data"].ContainsSecrets(), "the private key is a Pulumi secret")
}

// A running release cannot turn TLS on or off: every peer and client would have to switch at once.
func TestTLSCannotBeTurnedOnOrOffOnARunningRelease(t *testing.T) {
	plain := components.SettingsOf("redis", components.RedisSentinelArgs{}, components.Passwords{})
	secure := components.SettingsOf("redis", components.RedisSentinelArgs{ReleaseArgs: components.ReleaseArgs{TLS: components.TLSArgs{Enabled: true}}}, components.Passwords{})
	for _, change := range [][2]components.Settings{{plain, secure}, {secure, plain}} {
		err := components.CheckChange(change[0], change[1])
		require.Error(t, err)
		assert.Contains(t, err.Error(), "tls: changing")
		assert.Contains(t, err.Error(), "deploy a second release")
	}
	assert.NoError(t, components.CheckChange(secure, secure))
	assert.NoError(t, components.CheckChange(plain, components.SettingsOf("redis", components.RedisSentinelArgs{}, components.Passwords{})), "settings recorded before TLS existed read as off")
}

// Another source of the certificate is another CA, which pods not yet rolled would not trust.
// New names on the same source are a renewal, in place.
func TestTheCertificatesSourceCannotChangeOnARunningRelease(t *testing.T) {
	settings := func(tls components.TLSArgs) components.Settings {
		return components.SettingsOf("redis", components.RedisSentinelArgs{ReleaseArgs: components.ReleaseArgs{TLS: tls}}, components.Passwords{})
	}
	generated := components.TLSArgs{Enabled: true}
	issuer := components.TLSArgs{Enabled: true, IssuerName: "internal-ca"}
	for _, c := range []struct {
		from, to components.TLSArgs
		want     string
	}{
		{generated, components.TLSArgs{Enabled: true, SecretName: "redis-certs"}, `tlsSecretName: changing "generated" to "secret redis-certs"`},
		{generated, issuer, `tlsIssuerName: changing "generated" to "cert-manager Issuer internal-ca"`},
		{issuer, components.TLSArgs{Enabled: true, IssuerName: "internal-ca", IssuerKind: "ClusterIssuer"}, `tlsIssuerKind: changing "cert-manager Issuer internal-ca" to "cert-manager ClusterIssuer internal-ca"`},
		{issuer, components.TLSArgs{Enabled: true, IssuerName: "other-ca"}, `tlsIssuerName: changing "cert-manager Issuer internal-ca"`},
		{issuer, components.TLSArgs{Enabled: true, SecretName: "redis-certs"}, `tlsSecretName: changing "cert-manager Issuer internal-ca"`},
	} {
		err := components.CheckChange(settings(c.from), settings(c.to))
		require.Error(t, err, "%+v", c.to)
		assert.Contains(t, err.Error(), c.want)
		assert.Contains(t, err.Error(), "hold both CAs")
	}
	assert.NoError(t, components.CheckChange(settings(issuer), settings(components.TLSArgs{Enabled: true, IssuerName: "internal-ca", IssuerKind: "Issuer"})), "Issuer is the default kind")
	issuer.DNSNames = []string{"redis.example.internal"}
	assert.NoError(t, components.CheckChange(settings(components.TLSArgs{Enabled: true, IssuerName: "internal-ca"}), settings(issuer)))
}

// A RedisCluster speaks TLS on its bus too.
func TestWithTLSTheClusterBusIsTLS(t *testing.T) {
	r, err := runClusterComponent(t, &components.RedisClusterArgs{ReleaseArgs: components.ReleaseArgs{
		Namespace: "redis", Password: nil, TLS: components.TLSArgs{Enabled: true, SecretName: "redis-certs"},
	}})
	require.NoError(t, err)
	conf := r.configFile("cluster.conf")
	assert.Contains(t, conf, "\ntls-cluster yes\n")
	assert.Contains(t, conf, "\nport 0\ntls-port 6379\n")
}
