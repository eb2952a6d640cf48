package agentdb_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	agentdb "github.com/agentdb/agentdb/sdk/go"
)

var (
	extraOnce sync.Once
	extra     *testServer
	extraCAs  *x509.CertPool
	extraErr  error
	certDir   string
)

func stopExtra() {
	if extra != nil {
		extra.stop()
	}
	if certDir != "" {
		_ = os.RemoveAll(certDir)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns a pool that
// trusts it.
func selfSigned(dir string) (cert, key string, pool *x509.CertPool, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "agentdb-go-sdk-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err = os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return
	}
	if err = os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return
	}
	pool = x509.NewCertPool()
	pool.AddCert(parsed)
	return
}

// tlsRateLimited is a second server: TLS on, authentication off, and a request-rate
// quota of 4 requests/s with a burst of 1 (so a second call at once is refused with a
// retry-after-ms hint).
func tlsRateLimited(t *testing.T) *testServer {
	extraOnce.Do(func() {
		dir, err := os.MkdirTemp("", "agentdb-go-tls-")
		if err != nil {
			extraErr = err
			return
		}
		certDir = dir
		cert, key, pool, err := selfSigned(dir)
		if err != nil {
			extraErr = err
			return
		}
		extraCAs = pool
		extra, extraErr = startServer("security.tls.cert_file="+cert, "security.tls.key_file="+key,
			"security.rate_limit_per_sec=4", "security.rate_limit_burst=1")
	})
	if extraErr != nil {
		t.Fatal(extraErr)
	}
	return extra
}

func TestTLSAndRetryHonoursTheServerHint(t *testing.T) {
	s := tlsRateLimited(t)
	ctx := ctxT(t, 60*time.Second)

	// Without the CA the handshake fails.
	if _, err := agentdb.Dial(ctxT(t, 1500*time.Millisecond), s.addr, agentdb.WithTLS(x509.NewCertPool())); err == nil {
		t.Fatal("dial with an empty trust store succeeded")
	}
	// Plaintext against a TLS server fails too.
	if _, err := agentdb.Dial(ctxT(t, 1500*time.Millisecond), s.addr); err == nil {
		t.Fatal("plaintext dial to a TLS server succeeded")
	}

	noRetry, err := agentdb.Dial(ctx, s.addr, agentdb.WithTLS(extraCAs), agentdb.WithRetries(0))
	must(t, err)
	defer noRetry.Close()
	time.Sleep(600 * time.Millisecond) // a full bucket
	var refused *agentdb.Error
	for i := 0; i < 5 && refused == nil; i++ {
		if _, err := noRetry.ListCollections(ctx); err != nil {
			e, ok := err.(*agentdb.Error)
			if !ok || !agentdb.IsResourceExhausted(err) {
				t.Fatalf("want RESOURCE_EXHAUSTED, got %v", err)
			}
			refused = e
		}
	}
	if refused == nil {
		t.Fatal("5 calls at once were not rate limited")
	}
	if refused.RetryAfter <= 0 || refused.RetryAfter > 2*time.Second || refused.Attempts != 1 {
		t.Fatalf("the retry hint was not read: %+v", refused)
	}

	// With retries, every call succeeds: reads and writes (the server refused those
	// before applying them), each waiting for the hint.
	c, err := agentdb.Dial(ctx, "https://"+s.addr, agentdb.WithTLS(extraCAs))
	must(t, err)
	defer c.Close()
	time.Sleep(600 * time.Millisecond)
	start := time.Now()
	_, err = c.CreateCollection(ctx, "limited", agentdb.CollectionConfig{Spaces: []agentdb.Space{{Dim: 2, Index: "Flat"}}})
	must(t, err)
	for i := 0; i < 4; i++ {
		_, err := c.Upsert(ctx, "limited", []agentdb.Item{{ID: string(rune('a' + i)), Vectors: map[string][]float32{"": {1, float32(i)}}}})
		must(t, err)
	}
	n, err := c.Count(ctx, "limited", "")
	must(t, err)
	if n != 4 {
		t.Fatalf("count after retried upserts: %d", n)
	}
	// 6 calls at 4/s with a burst of 1: at least ~1.25 s of waiting for hints.
	if el := time.Since(start); el < 1000*time.Millisecond {
		t.Fatalf("6 rate-limited calls took only %v: the hint was not honoured", el)
	}
}
