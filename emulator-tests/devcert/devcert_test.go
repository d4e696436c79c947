package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestServerCertVerifiesForLoopbackOnlyThroughTheCA(t *testing.T) {
	c, err := New("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := c.Server.Leaf.Verify(x509.VerifyOptions{Roots: c.Pool, DNSName: host}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := c.Server.Leaf.Verify(x509.VerifyOptions{Roots: c.Pool, DNSName: "example.com"}); err == nil {
		t.Error("certificate verified for a host it was not issued for")
	}
	other, _ := New("other", time.Hour)
	if _, err := c.Server.Leaf.Verify(x509.VerifyOptions{Roots: other.Pool, DNSName: "localhost"}); err == nil {
		t.Error("certificate verified against another CA")
	}
}

func TestTLSHandshakeWithClientConfig(t *testing.T) {
	c, err := New("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", c.ServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	cfg := c.ClientTLS()
	conn, err := tls.Dial("tcp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	conn.Close()
}
