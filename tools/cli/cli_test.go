package cli

import (
	"flag"
	"slices"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]uint64{"0": 0, "4096": 4096, "4k": 4096, "64K": 65536, "1M": 1 << 20,
		"1.5G": 3 << 29, "10T": 10 << 40, "2GiB": 2 << 30, "512B": 512}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "abc", "1X", "99999999999999999999", "20000000P"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	for _, n := range []uint64{0, 1000, 4096, 3 << 29, 10 << 40} {
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q does not parse back", n, FormatSize(n))
		}
	}
}

func TestParseMixesFlagsAndArgs(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	j := fs.Bool("json", false, "")
	n := fs.Int("n", 0, "")
	pos, err := Parse(fs, []string{"a", "--json", "b", "-n", "3", "c"})
	if err != nil || !*j || *n != 3 || !slices.Equal(pos, []string{"a", "b", "c"}) {
		t.Fatalf("Parse: %v %v %d %q", err, *j, *n, pos)
	}
}
