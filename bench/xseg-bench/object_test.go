package main

import (
	"context"
	"testing"
	"time"

	"github.com/archipelago-go/archipelago/drivers/file"
	"github.com/archipelago-go/archipelago/peers"
	"github.com/archipelago-go/archipelago/peers/blocker"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

func TestPattern(t *testing.T) {
	p := make([]byte, 4096)
	fillPattern(p, 3, 8192)
	if _, ok := checkPattern(p, 3, 8192); !ok {
		t.Fatal("pattern does not check")
	}
	if _, ok := checkPattern(p, 3, 4096); ok {
		t.Error("pattern of another offset checks")
	}
	if _, ok := checkPattern(p, 4, 8192); ok {
		t.Error("pattern of another object checks")
	}
	p[100] ^= 1
	if at, ok := checkPattern(p, 3, 8192); ok || at != 96 {
		t.Errorf("corruption at byte 100 reported at %d (%v)", at, ok)
	}
}

// TestObjectMode runs the object mode against a blocker over a file
// store in this process: prefill, a verified write run, a verified read
// run, then a read run over objects that were never written, which the
// verification must catch.
func TestObjectMode(t *testing.T) {
	dir := t.TempDir()
	g := xseg.Geometry{Ports: 32, StaticPorts: 8, Requests: 256, BufferBytes: 64 << 20}
	if err := xseg.Create("bench", g, xseg.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	s, err := xseg.Join("bench", xseg.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	store, err := file.Open(t.TempDir(), file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocker.New(store, blocker.Options{Owner: "bench_1"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	serverPort, err := s.Bind(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { (&peers.Server{Handler: b}).Serve(ctx, serverPort); close(done) }()
	defer func() { cancel(); <-done; serverPort.Release() }()
	client, err := s.BindDynamic()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Release()

	c := objectConfig{
		loadConfig: loadConfig{target: target{port: 1}, iodepth: 8, size: cli.SizeFlag{Bytes: 4096},
			duration: 200 * time.Millisecond, warmup: 10 * time.Millisecond, sampleEvery: 1},
		op: "write", pattern: "rand", objectSize: cli.SizeFlag{Bytes: 256 << 10}, objects: 4,
		prefix: "t", verify: true, seed: 1,
	}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	if err := prefill(client, c); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"write", "read"} {
		c.op = op
		res, err := runObject(client, c)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if res.Ops == 0 || res.Errors != 0 || res.MiBPerSec <= 0 {
			t.Errorf("%s: %+v", op, res)
		}
	}
	c.prefix = "never-written"
	res, err := runObject(client, c)
	if err == nil || res.VerifyErrors == 0 {
		t.Errorf("reading unwritten objects with --verify: %v, %d mismatches", err, res.VerifyErrors)
	}
}
