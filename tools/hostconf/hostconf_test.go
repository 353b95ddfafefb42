package hostconf

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// render prints a host and the command line of each peer it runs.
func render(t *testing.T, h *Host) []byte {
	t.Helper()
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var s strings.Builder
	s.Write(b)
	s.WriteString("\n\nstart order:\n")
	for _, p := range h.StartOrder() {
		s.WriteString(p.Binary() + " " + strings.Join(h.Args(p), " ") + "\n")
	}
	return []byte(s.String())
}

func TestGolden(t *testing.T) {
	for _, name := range []string{"archipelago.conf", "archipelago.conf.rados_example", "minimal.conf", "example.conf"} {
		t.Run(name, func(t *testing.T) {
			h, err := Load(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden", render(t, h))
		})
	}
}

func TestDefault(t *testing.T) {
	h := Default()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := h.Vlmcd()
	if err != nil || v.Port() != DefaultVlmcdPort {
		t.Fatalf("Vlmcd = %+v, %v", v, err)
	}
	order := h.StartOrder()
	if len(order) != 4 || order[3].Type != Nbdd {
		t.Fatalf("StartOrder: %+v", order)
	}
	n, err := h.Nbdd()
	if err != nil || n.VlmcdPort != DefaultVlmcdPort || n.Socket != filepath.Join(h.RunDir, "nbd.sock") || n.PortArg() != "dynamic" {
		t.Fatalf("Nbdd = %+v, %v", n, err)
	}
	args := strings.Join(h.Args(n), " ")
	if strings.Contains(args, "--port") || !strings.Contains(args, "--socket "+n.Socket) {
		t.Fatalf("nbdd args %q", args)
	}
}

func TestErrors(t *testing.T) {
	bad := map[string]string{
		"[XSEG]\nSEGMENT_PORTZ = 3\n":                                     `unknown key "segment_portz"`,
		"[blockerb]\nfoo = 1\n":                                           `[blockerb] unknown key "foo"`,
		"[nosuch]\ntype = vlmcd\n":                                        "[nosuch]: unknown section",
		"[PEERS]\nROLES = x\n":                                            `role "x" has no [x] section`,
		"[PEERS]\nROLES = x\n[x]\ntype = cache\n":                         `type = "cache"`,
		"[XSEG]\nSEGMENT_DYNPORTS = 1500\n":                               "[blockerb] ports 1000",
		"[vlmcd]\nportno_start = 1000\nportno_end = 1000\n":               "also used by",
		"[vlmcd]\nmapper_port = 7\n":                                      "mapper_port 7",
		"[mapperd]\nnr_ops = lots\n":                                      `nr_ops = "lots"`,
		"[PEERS]\nROLES = b\n[b]\ntype = file_blocker\narchip_dir = /x\n": "portno_start: required",
		"key = 1\n":                            "before any [SECTION]",
		"[PEERS]\nROLES = blockerb blockerb\n": "listed twice",
		"[PEERS]\nROLES = b m v\n[b]\ntype = rados_blocker\nportno_start=1\n":                       "pool: required",
		"[PEERS]\nROLES = blockerb blockerm mapperd vlmcd n\n[n]\ntype = nbdd\nportno_start = 9\n":  "nbdd binds a dynamic port",
		"[PEERS]\nROLES = blockerb blockerm mapperd vlmcd n\n[n]\ntype = nbdd\nvlmcd_port = 1001\n": "vlmcd_port 1001: no vlmcd",
		"[vlmcd]\ncpus = 2-1\n":    `cpus = "2-1": "2-1": want a CPU number or a range N-M`,
		"[vlmcd]\ncpus = one\n":    `cpus = "one"`,
		"[vlmcd]\ncpus = 0,4096\n": "CPU 4096: the largest is 1023",
	}
	for text, want := range bad {
		_, err := Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", text, err, want)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	for in, want := range map[string]string{
		"0":             "[0]",
		"3,1-2":         "[1 2 3]",
		" 0 - 1 , 1 ":   "[0 1]",
		"8-10,0,9":      "[0 8 9 10]",
		"1023":          "[1023]",
		"2-2,5-6,12-13": "[2 5 6 12 13]",
	} {
		got, err := ParseCPUs(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseCPUs(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", ",", "-1", "1-", "a", "3-2", "1024", "0-2000"} {
		if got, err := ParseCPUs(in); err == nil {
			t.Errorf("ParseCPUs(%q) = %v, want an error", in, got)
		}
	}
}
