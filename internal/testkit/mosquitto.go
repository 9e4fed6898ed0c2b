package testkit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MosquittoBinary is where Debian installs the broker.
const MosquittoBinary = "/usr/sbin/mosquitto"

// The user of Mosquitto's password listener.
const (
	MosquittoUser     = "herald"
	MosquittoPassword = "herald-test-password"
)

// Mosquitto is a real Mosquitto broker for tests of the external broker
// modes: a plain listener, a password listener, a mutual-TLS listener and a
// WebSocket listener on free loopback ports, with certificates made by the
// test. Tests skip when MosquittoBinary is not installed. Mosquitto is one
// broker process; Stop and Start reuse the same ports,
// configuration and persistence file.
type Mosquitto struct {
	t    testing.TB
	dir  string
	conf string
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}

	// Listener addresses (host:port on 127.0.0.1).
	PlainAddr, PasswordAddr, TLSAddr, WSAddr string
	// ServerCAs trusts the broker's certificate; ClientCert is accepted by
	// the TLS listener, which requires one.
	ServerCAs  *x509.CertPool
	ClientCert tls.Certificate
}

// StartMosquitto writes a config into a temporary directory and starts Mosquitto
// with persistence on. It is stopped when the test ends.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	if _, err := os.Stat(MosquittoBinary); err != nil {
		t.Skipf("mosquitto not installed: %v", err)
	}
	// A port found free can be taken before Mosquitto binds it (its
	// WebSocket listener also binds IPv6); try fresh ports a few times.
	for attempt := 1; ; attempt++ {
		m, err := startMosquitto(t)
		if err == nil {
			t.Cleanup(m.Stop)
			return m
		}
		if attempt == 3 {
			t.Fatal(err)
		}
	}
}

func startMosquitto(t testing.TB) (*Mosquitto, error) {
	m := &Mosquitto{t: t, dir: t.TempDir()}
	m.PlainAddr, m.PasswordAddr, m.TLSAddr, m.WSAddr = FreeAddr(t), FreeAddr(t), FreeAddr(t), FreeAddr(t)
	m.writeCerts()
	pw := filepath.Join(m.dir, "passwd")
	if out, err := exec.Command("/usr/bin/mosquitto_passwd", "-b", "-c", pw, MosquittoUser, MosquittoPassword).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	conf := fmt.Sprintf(`per_listener_settings true
persistence true
persistence_location %[1]s/
autosave_interval 1
log_dest stderr
log_type error
log_type warning
log_type notice
max_inflight_messages 100
max_queued_messages 100000

listener %[2]s 127.0.0.1
allow_anonymous true

listener %[3]s 127.0.0.1
allow_anonymous false
password_file %[1]s/passwd

listener %[4]s 127.0.0.1
allow_anonymous true
cafile %[1]s/ca.pem
certfile %[1]s/server.pem
keyfile %[1]s/server-key.pem
require_certificate true

listener %[5]s 127.0.0.1
protocol websockets
allow_anonymous true
`, m.dir, port(m.PlainAddr), port(m.PasswordAddr), port(m.TLSAddr), port(m.WSAddr))
	if os.Geteuid() == 0 {
		// As root Mosquitto would switch to user "mosquitto", which cannot
		// read the test's private temporary directory.
		conf = "user root\n" + conf
	}
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return m, m.launch()
}

// Start (re)starts the broker on the same ports and waits until every
// listener accepts.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if err := m.launch(); err != nil {
		m.t.Fatal(err)
	}
}

func (m *Mosquitto) launch() error {
	m.out.Reset()
	m.cmd = exec.Command(MosquittoBinary, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(m.cmd, m.done)
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range []string{m.PlainAddr, m.PasswordAddr, m.TLSAddr, m.WSAddr} {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-m.done:
				return fmt.Errorf("mosquitto exited: %s", m.out.String())
			default:
			}
			if time.Now().After(deadline) {
				m.Stop()
				return fmt.Errorf("mosquitto not listening on %s: %s", a, m.out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Stop terminates the broker (SIGTERM: it saves its persistence file) and
// waits for it to exit.
func (m *Mosquitto) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// Log returns what the broker printed since its last start.
func (m *Mosquitto) Log() string { return m.out.String() }

// PID is the running broker's process id (for reading its memory and CPU
// from /proc).
func (m *Mosquitto) PID() int { return m.cmd.Process.Pid }

// ClientTLS is a client configuration for the TLS listener.
func (m *Mosquitto) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: m.ServerCAs, Certificates: []tls.Certificate{m.ClientCert}, ServerName: "127.0.0.1"}
}

func (m *Mosquitto) writeCerts() {
	t := m.t
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	m.ServerCAs = x509.NewCertPool()
	m.ServerCAs.AddCert(ca)
	writePEM(t, filepath.Join(m.dir, "ca.pem"), "CERTIFICATE", caDER)

	issue := func(name string, serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := issue("127.0.0.1", 2, x509.ExtKeyUsageServerAuth)
	writePEM(t, filepath.Join(m.dir, "server.pem"), "CERTIFICATE", srvDER)
	kb, _ := x509.MarshalECPrivateKey(srvKey)
	writePEM(t, filepath.Join(m.dir, "server-key.pem"), "EC PRIVATE KEY", kb)

	cliDER, cliKey := issue("svc-test", 3, x509.ExtKeyUsageClientAuth)
	m.ClientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	// Files too, for processes started by tests.
	writePEM(t, filepath.Join(m.dir, "client.pem"), "CERTIFICATE", cliDER)
	kb, _ = x509.MarshalECPrivateKey(cliKey)
	writePEM(t, filepath.Join(m.dir, "client-key.pem"), "EC PRIVATE KEY", kb)
}

// File returns the path of a file the broker was set up with: ca.pem,
// client.pem, client-key.pem.
func (m *Mosquitto) File(name string) string { return filepath.Join(m.dir, name) }

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	var b strings.Builder
	if err := pem.Encode(&b, &pem.Block{Type: typ, Bytes: der}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects the broker's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
