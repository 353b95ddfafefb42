package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestList runs vlmc list on a host: the live volumes and snapshots,
// sorted, with their sizes; not removed ones; a prefix selects; --json is
// an array; a hostile prefix is a one-line error.
func TestList(t *testing.T) {
	h := newHost(t)
	h.start()
	if out := h.run("vlmc", "list"); strings.TrimSpace(out) != "no volumes (vlmc create NAME --size S makes one)" {
		t.Errorf("list of an empty host: %q", out)
	}
	if out := h.run("vlmc", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("list --json of an empty host: %q", out)
	}
	h.run("vlmc", "create", "vol1", "--size", "20M")
	h.run("vlmc", "create", "vol2", "--size", "8M")
	h.run("vlmc", "create", "gone", "--size", "4M")
	h.run("vlmc", "snapshot", "vol1", "snap1")
	h.run("vlmc", "clone", "snap1", "clone1", "--size", "1G")
	h.run("vlmc", "remove", "gone")
	h.run("vlmc", "rename", "vol2", "vol3")

	want := `NAME    SIZE  BLOCK  TYPE
clone1  1G    4M     volume
snap1   20M   4M     snapshot
vol1    20M   4M     volume
vol3    8M    4M     volume
`
	if out := h.run("vlmc", "list"); out != want {
		t.Errorf("list:\n%s\nwant:\n%s", out, want)
	}
	var got []listed
	if err := json.Unmarshal([]byte(h.run("vlmc", "list", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	wantJSON := []listed{
		{Volume: "clone1", Size: 1024 * mib, BlockSize: 4 * mib},
		{Volume: "snap1", Size: 20 * mib, BlockSize: 4 * mib, ReadOnly: true},
		{Volume: "vol1", Size: 20 * mib, BlockSize: 4 * mib},
		{Volume: "vol3", Size: 8 * mib, BlockSize: 4 * mib},
	}
	if !reflect.DeepEqual(got, wantJSON) {
		t.Errorf("list --json = %+v, want %+v", got, wantJSON)
	}
	if out := h.run("vlmc", "ls", "vol", "--json"); !strings.Contains(out, `"volume": "vol1"`) || strings.Contains(out, "snap1") {
		t.Errorf("ls vol --json: %s", out)
	}
	if out := h.run("vlmc", "list", "nomatch"); strings.TrimSpace(out) != `no volume's name starts with "nomatch"` {
		t.Errorf("list nomatch: %q", out)
	}
	h.fails(1, `list "a/b": invalid name: volume name prefix "a/b" holds '/' or NUL`, "list", "a/b")
	h.fails(1, "the limit is 82", "list", strings.Repeat("x", 300))
	h.fails(2, "usage: vlmc list [PREFIX]", "list", "a", "b")

	help, err := exec.Command(filepath.Join(bins, "vlmc"), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "list [PREFIX] (ls)") {
		t.Errorf("vlmc --help does not tell of list: %v", err)
	}
}
