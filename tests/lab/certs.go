package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"time"
)

// tlsVolume is the name of the pods' volume of the release's certificate (components/tls.go).
const tlsVolume = "tls"

// labAuthority is a CA of the lab's own, which signs a release's certificates as a user's CA or
// cert-manager would: the lab supplies the certificate Secret, which no test here can have the
// component generate (the tls provider is not served here).
type labAuthority struct {
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	dnsNames []string
	serial   int64
}

func newLabAuthority(dnsNames []string) (*labAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &labAuthority{cert: cert, key: key, dnsNames: dnsNames, serial: 1}, err
}

// issue is the data of the certificate Secret with a new key and certificate (a renewal, when
// called again): tls.crt, tls.key and ca.crt; and the certificate's serial number.
func (a *labAuthority) issue() (map[string]string, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	a.serial++
	now := time.Now()
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(a.serial), Subject: pkix.Name{CommonName: "lab release"}, DNSNames: a.dnsNames,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	encode := func(kind string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
	}
	return map[string]string{
		"tls.crt": encode("CERTIFICATE", der),
		"tls.key": encode("EC PRIVATE KEY", keyDER),
		"ca.crt":  encode("CERTIFICATE", a.cert.Raw),
	}, leaf.SerialNumber, nil
}

// clientTLS is how the lab's client speaks TLS to a release that has it: the server's
// certificate must chain to the release's CA. Its names are not checked here: the client dials
// addresses it resolved itself; HAProxy's checks (check-sni, verify required) check them.
func clientTLS(caPEM string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("lab: the release's CA is no PEM certificate")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified below, against the CA only.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("lab: the server sent no certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, der := range raw {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			intermediates := x509.NewCertPool()
			for _, c := range certs[1:] {
				intermediates.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates})
			return err
		},
	}, nil
}
