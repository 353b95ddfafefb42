// Package cli owns what the project's command-line tools share: sizes with
// K/M/G/T suffixes, flags mixed with positional arguments, and the one-line
// error that ends a failed command.
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ParseSize reads a byte count such as 4096, 64K, 1.5G or 10T (powers of
// 1024; an optional trailing "B" or "iB" is accepted).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := uint64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGTP", t[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	if t == "" {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	if whole, err := strconv.ParseUint(t, 10, 64); err == nil {
		if whole > ^uint64(0)/mult {
			return 0, fmt.Errorf("size %q: too large", s)
		}
		return whole * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) >= 1<<64 {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", s)
	}
	return uint64(f * float64(mult)), nil
}

// FormatSize prints a byte count with the largest exact binary suffix.
func FormatSize(n uint64) string {
	for i, suffix := range []string{"T", "G", "M", "K"} {
		unit := uint64(1) << (10 * (4 - i))
		if n >= unit && n%unit == 0 {
			return fmt.Sprintf("%d%s", n/unit, suffix)
		}
	}
	return strconv.FormatUint(n, 10)
}

// SizeFlag is a flag.Value for sizes.
type SizeFlag struct{ Bytes uint64 }

func (f *SizeFlag) String() string { return FormatSize(f.Bytes) }

// Set parses a size.
func (f *SizeFlag) Set(s string) (err error) {
	f.Bytes, err = ParseSize(s)
	return err
}

// Parse parses args with fs, allowing flags before, between and after
// positional arguments, and returns the positional ones.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// PrintJSON writes v as indented JSON on stdout.
func PrintJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Fatal prints "prog: err" on one line to stderr and exits 1 (2 for a
// usage error).
func Fatal(prog string, err error) {
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	if errors.Is(err, ErrUsage) {
		os.Exit(2)
	}
	os.Exit(1)
}

// ErrUsage marks an error in how a command was called.
var ErrUsage = errors.New("usage")

// Usagef returns an ErrUsage error with a message.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}
