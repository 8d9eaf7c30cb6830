package components

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"
)

// TLSArgs turns on TLS for every connection of a release: clients, replication, the sentinels,
// the cluster bus, HAProxy's checks and the exporter. With it on, the servers and sentinels
// listen for TLS only (redis's `port 0`), on the same ports as without it.
//
// The certificate is one for the release, whose names cover every pod and Service
// (certificateNames). It comes from one of three places:
//   - SecretName: a Secret of the namespace that the user keeps, with the keys tls.crt, tls.key
//     and ca.crt (those of a kubernetes.io/tls Secret, as cert-manager writes them);
//   - IssuerName: a cert-manager Certificate that the component registers, signed by that
//     Issuer (or ClusterIssuer), renewed by cert-manager; the issuer must write ca.crt (a CA or
//     Vault issuer does; an ACME issuer cannot sign cluster-internal names anyway);
//   - neither: a CA and a certificate that the program generates and keeps in its state
//     (generatedCertificate), renewed by the first `pulumi up` within their renewal window.
//
// Clients connect with TLS and verify the servers against ca.crt; they still authenticate by
// password. The servers ask no certificate of their clients (tls-auth-clients no).
type TLSArgs struct {
	Enabled bool
	// SecretName names an existing Secret with tls.crt, tls.key and ca.crt.
	SecretName string
	// IssuerName names the cert-manager issuer that signs the release's Certificate; IssuerKind
	// is Issuer (the default, in the release's namespace) or ClusterIssuer.
	IssuerName string
	IssuerKind string
	// DNSNames are more names the certificate must cover, such as a DNS record that points at
	// the load balancer. Ignored with SecretName, whose certificate the user made.
	DNSNames []string
}

// IssuerKinds are the cert-manager issuer kinds a Certificate may name.
var IssuerKinds = []string{"Issuer", "ClusterIssuer"}

// Where every container of a TLS release finds the certificate, and the keys of its Secret.
const (
	tlsDir     = "/etc/redis-sentinel-tls"
	tlsCertKey = "tls.crt"
	tlsKeyKey  = "tls.key"
	tlsCAKey   = "ca.crt"
	volumeTLS  = "tls"
)

// Lifetimes of a generated certificate, in hours. The CA lives ten years; the release's
// certificate one year, and the first `pulumi up` in its last 30 days replaces it.
const (
	generatedCAHours           = 10 * 365 * 24
	generatedCertificateHours  = 365 * 24
	generatedEarlyRenewalHours = 30 * 24
)

func (t TLSArgs) withDefaults() TLSArgs {
	if t.Enabled && t.IssuerName != "" {
		setDefault(&t.IssuerKind, IssuerKinds[0])
	}
	return t
}

// source says where the certificate comes from, for Settings: empty without TLS.
func (t TLSArgs) source() string {
	switch {
	case !t.Enabled:
		return ""
	case t.SecretName != "":
		return "secret " + t.SecretName
	case t.IssuerName != "":
		return "cert-manager " + t.IssuerKind + " " + t.IssuerName
	}
	return "generated"
}

// validate reports through fail every problem of the TLS args.
func (t TLSArgs) validate(fail func(field string, value any, allowed string)) {
	if !t.Enabled {
		for _, f := range []struct{ field, value string }{{"tlsSecretName", t.SecretName}, {"tlsIssuerName", t.IssuerName}, {"tlsIssuerKind", t.IssuerKind}} {
			if f.value != "" {
				fail(f.field, f.value, "empty unless tls is true")
			}
		}
		if len(t.DNSNames) > 0 {
			fail("tlsDnsNames", t.DNSNames, "empty unless tls is true")
		}
		return
	}
	if t.SecretName != "" && len(validation.IsDNS1123Subdomain(t.SecretName)) > 0 {
		fail("tlsSecretName", t.SecretName, "a Secret name (a lowercase DNS subdomain)")
	}
	if t.SecretName != "" && t.IssuerName != "" {
		fail("tlsIssuerName", t.IssuerName, "empty when tlsSecretName is set: the certificate comes from that Secret or from the issuer, not both")
	}
	if t.IssuerName != "" && len(validation.IsDNS1123Subdomain(t.IssuerName)) > 0 {
		fail("tlsIssuerName", t.IssuerName, "a cert-manager issuer's name (a lowercase DNS subdomain)")
	}
	if t.IssuerKind != "" && (t.IssuerName == "" || !slices.Contains(IssuerKinds, t.IssuerKind)) {
		fail("tlsIssuerKind", t.IssuerKind, fmt.Sprintf("one of %v, together with tlsIssuerName", IssuerKinds))
	}
	if t.SecretName != "" && len(t.DNSNames) > 0 {
		fail("tlsDnsNames", t.DNSNames, "empty when tlsSecretName is set: that Secret's certificate decides its names")
	}
	for i, name := range t.DNSNames {
		if len(validation.IsDNS1123Subdomain(strings.TrimPrefix(name, "*."))) > 0 {
			fail(fmt.Sprintf("tlsDnsNames[%d]", i), name, "a DNS name such as redis.example.internal, or a wildcard *.example.internal")
		}
	}
}

// certificateNames are the DNS names the release's certificate covers: every pod by its stable
// name (a wildcard under the headless Service), every Service of the kind of release by its
// short and full names, localhost for the exporter (and a person inside a pod), and extra.
func certificateNames(n names, a ReleaseArgs, services []string, extra []string) []string {
	dnsNames := []string{"*." + peerDomain(n, a), "localhost"}
	for _, service := range services {
		dnsNames = append(dnsNames,
			service, service+"."+a.Namespace, service+"."+a.Namespace+".svc", serviceHost(service, a))
	}
	return append(dnsNames, extra...)
}

// tlsSecret registers where the release's certificate comes from (see TLSArgs), and returns the
// name of the Secret that holds it and the resource the pods must wait for (nil for a user's
// Secret, which the program does not create).
func (b *builder) tlsSecret(services []string) (string, pulumi.Resource, error) {
	t := b.release.TLS
	if t.SecretName != "" {
		return t.SecretName, nil, nil
	}
	name := b.names.tls
	dnsNames := certificateNames(b.names, b.release, services, t.DNSNames)
	if t.IssuerName != "" {
		certificate, err := apiextensions.NewCustomResource(b.ctx, name, &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String("cert-manager.io/v1"),
			Kind:       pulumi.String("Certificate"),
			Metadata:   b.meta(name, b.labels(componentRedis)),
			OtherFields: kubernetes.UntypedArgs{
				"spec": pulumi.Map{
					"secretName": pulumi.String(name),
					"dnsNames":   pulumi.ToStringArray(dnsNames),
					"issuerRef": pulumi.Map{
						"name": pulumi.String(t.IssuerName), "kind": pulumi.String(t.IssuerKind), "group": pulumi.String("cert-manager.io"),
					},
					// A new key at every renewal: a key that leaked stops working with its certificate.
					"privateKey": pulumi.Map{"algorithm": pulumi.String("ECDSA"), "size": pulumi.Int(256), "rotationPolicy": pulumi.String("Always")},
					// Servers present it, and present it as clients to their peers (replication, the bus).
					"usages": pulumi.ToStringArray([]string{"digital signature", "key encipherment", "server auth", "client auth"}),
				},
			},
		}, b.opts...)
		return name, certificate, err
	}
	data, err := b.generatedCertificate(dnsNames)
	if err != nil {
		return "", nil, err
	}
	secret, err := b.patchedSecret(name, "kubernetes.io/tls", data)
	return name, secret, err
}

// generatedCertificate registers a CA and the release's certificate, signed by it, as resources of
// the program's state: they stay the same at every `pulumi up` until the certificate's renewal
// window, when the engine replaces it (the CA stays, so clients keep trusting it). Both keys live
// in the state, which Pulumi encrypts as secrets.
func (b *builder) generatedCertificate(dnsNames []string) (pulumi.StringMap, error) {
	base := b.names.tls
	newKey := func(name string) (*tls.PrivateKey, error) {
		return tls.NewPrivateKey(b.ctx, name, &tls.PrivateKeyArgs{Algorithm: pulumi.String("ECDSA"), EcdsaCurve: pulumi.String("P256")}, b.opts...)
	}
	caKey, err := newKey(base + "-ca-key")
	if err != nil {
		return nil, err
	}
	ca, err := tls.NewSelfSignedCert(b.ctx, base+"-ca", &tls.SelfSignedCertArgs{
		PrivateKeyPem:       caKey.PrivateKeyPem,
		IsCaCertificate:     pulumi.Bool(true),
		ValidityPeriodHours: pulumi.Int(generatedCAHours),
		AllowedUses:         pulumi.ToStringArray([]string{"cert_signing", "crl_signing"}),
		Subject:             &tls.SelfSignedCertSubjectArgs{CommonName: pulumi.String(b.names.base + " CA")},
	}, b.opts...)
	if err != nil {
		return nil, err
	}
	key, err := newKey(base + "-key")
	if err != nil {
		return nil, err
	}
	request, err := tls.NewCertRequest(b.ctx, base+"-request", &tls.CertRequestArgs{
		PrivateKeyPem: key.PrivateKeyPem,
		DnsNames:      pulumi.ToStringArray(dnsNames),
		// Clients check the names above; a common name of at most 64 characters is only a label.
		Subject: &tls.CertRequestSubjectArgs{CommonName: pulumi.String(b.names.base)},
	}, b.opts...)
	if err != nil {
		return nil, err
	}
	certificate, err := tls.NewLocallySignedCert(b.ctx, base, &tls.LocallySignedCertArgs{
		CertRequestPem:      request.CertRequestPem,
		CaPrivateKeyPem:     caKey.PrivateKeyPem,
		CaCertPem:           ca.CertPem,
		ValidityPeriodHours: pulumi.Int(generatedCertificateHours),
		EarlyRenewalHours:   pulumi.Int(generatedEarlyRenewalHours),
		AllowedUses:         pulumi.ToStringArray([]string{"digital_signature", "key_encipherment", "server_auth", "client_auth"}),
	}, b.opts...)
	if err != nil {
		return nil, err
	}
	return pulumi.StringMap{
		tlsCertKey: certificate.CertPem,
		tlsKeyKey:  pulumi.ToSecret(key.PrivateKeyPem).(pulumi.StringOutput),
		tlsCAKey:   ca.CertPem,
	}, nil
}

// tlsVolume is the certificate's Secret as files, only keys when given (HAProxy needs only the
// CA). Files follow a renewal in a running pod, where a redis server loads them again
// (common.sh: reload_certificate).
func (b *builder) tlsVolume(keys ...string) corev1.VolumeArgs {
	source := &corev1.SecretVolumeSourceArgs{SecretName: pulumi.String(b.tlsSecretName), DefaultMode: pulumi.Int(0o440)}
	if len(keys) > 0 {
		items := corev1.KeyToPathArray{}
		for _, key := range keys {
			items = append(items, corev1.KeyToPathArgs{Key: pulumi.String(key), Path: pulumi.String(key)})
		}
		source.Items = items
	}
	return corev1.VolumeArgs{Name: pulumi.String(volumeTLS), Secret: source}
}

func tlsMount() corev1.VolumeMountArgs {
	return corev1.VolumeMountArgs{Name: pulumi.String(volumeTLS), MountPath: pulumi.String(tlsDir), ReadOnly: pulumi.Bool(true)}
}
