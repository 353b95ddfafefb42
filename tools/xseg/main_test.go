package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

// capture runs f with stdout going to a string.
func capture(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, _ := os.Pipe()
	old := os.Stdout
	os.Stdout = w
	err := f()
	w.Close()
	os.Stdout = old
	out, _ := io.ReadAll(r)
	return string(out), err
}

func TestCreateReportRecoverDestroy(t *testing.T) {
	dir := t.TempDir()
	out, err := capture(t, func() error {
		return create([]string{"s1", "--dir", dir, "--ports", "32", "--static-ports", "8", "--requests", "64", "--buffer", "1M"})
	})
	if err != nil || !strings.Contains(out, "32 ports (8 static), 64 requests, 1M buffer space") {
		t.Fatalf("create: %q %v", out, err)
	}
	s, err := xseg.Join("s1", xseg.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	if _, err := s.Bind(5); err != nil {
		t.Fatal(err)
	}
	out, err = capture(t, func() error { return report([]string{"s1", "--dir", dir, "--json"}) })
	if err != nil {
		t.Fatal(err)
	}
	var rep xseg.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report --json is not JSON: %v\n%s", err, out)
	}
	if rep.FreeRequests != 64 || len(rep.Ports) != 1 || rep.Ports[0].Port != 5 || !rep.Ports[0].Alive || rep.Ports[0].OwnerPID != uint32(os.Getpid()) {
		t.Fatalf("report: %+v", rep)
	}
	out, err = capture(t, func() error { return report([]string{"s1", "--dir", dir}) })
	if err != nil || !strings.Contains(out, "requests 64 free of 64") || !strings.Contains(out, "bound") {
		t.Fatalf("human report: %q %v", out, err)
	}
	out, err = capture(t, func() error { return recoverCmd([]string{"s1", "--dir", dir}) })
	if err != nil || !strings.Contains(out, "reclaimed 0 ports") {
		t.Fatalf("recover: %q %v", out, err)
	}
	if err := create([]string{"s1", "--dir", dir}); !errors.Is(err, xseg.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := report([]string{"--dir", dir}); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("report without a name: %v", err)
	}
	if err := destroy([]string{"s1", "--dir", dir}); err != nil {
		t.Fatal(err)
	}
	if err := report([]string{"s1", "--dir", dir}); !errors.Is(err, xseg.ErrNotFound) {
		t.Fatalf("report of a destroyed segment: %v", err)
	}
}
