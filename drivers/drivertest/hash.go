package drivertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/archipelago-go/archipelago/drivers"
)

func hashOf(t *testing.T, s drivers.Store, name string) string {
	t.Helper()
	sum, err := s.Hash(t.Context(), name)
	if err != nil {
		t.Fatalf("Hash(%q): %v", name, err)
	}
	return sum
}

// wantContent checks that the object sum holds content, zeros after it.
func wantContent(t *testing.T, s drivers.Store, sum string, content []byte) {
	t.Helper()
	if n := size(t, s, sum); n < int64(len(content)) {
		t.Errorf("content-addressed object %s has %d bytes, want at least %d", sum, n, len(content))
	}
	got := read(t, s, sum, len(content)+4096, 0)
	wantBytes(t, "content-addressed object", got[:len(content)], content)
	wantZeros(t, "content-addressed object past the content", got[len(content):])
}

func testHash(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := t.Context()
	content := pattern(1, 5000)
	digest := sha256.Sum256(content)
	want := hex.EncodeToString(digest[:])

	write(t, s, "plain", content, 0)
	sum := hashOf(t, s, "plain")
	if sum != want {
		t.Fatalf("Hash = %q, want SHA-256 of the content %q", sum, want)
	}
	wantContent(t, s, sum, content)
	if again := hashOf(t, s, "plain"); again != sum {
		t.Errorf("second Hash = %q, want %q", again, sum)
	}
	wantContent(t, s, sum, content)
	wantBytes(t, "hashed object", read(t, s, "plain", len(content), 0), content)

	// Trailing zeros, written or implied by a sparse write, do not count.
	write(t, s, "padded", append(bytes.Clone(content), make([]byte, 3000)...), 0)
	if got := hashOf(t, s, "padded"); got != want {
		t.Errorf("Hash with written trailing zeros = %q, want %q", got, want)
	}
	write(t, s, "sparse", content, 0)
	write(t, s, "sparse", []byte{0}, 2*objectSize)
	if got := hashOf(t, s, "sparse"); got != want {
		t.Errorf("Hash with a sparse zero tail = %q, want %q", got, want)
	}
	// Inner zeros do count.
	holed := append(append(bytes.Clone(content[:2500]), make([]byte, 100)...), content[2500:]...)
	write(t, s, "holed", holed, 0)
	d := sha256.Sum256(holed)
	holedSum := hex.EncodeToString(d[:])
	if got := hashOf(t, s, "holed"); got != holedSum {
		t.Errorf("Hash with inner zeros = %q, want %q", got, holedSum)
	}
	wantContent(t, s, holedSum, holed)

	// So do zero runs longer than any buffer a backend might hash in.
	write(t, s, "gapped", content, 0)
	write(t, s, "gapped", content, 3<<20)
	gapped := append(append(bytes.Clone(content), make([]byte, 3<<20-len(content))...), content...)
	d = sha256.Sum256(gapped)
	if got := hashOf(t, s, "gapped"); got != hex.EncodeToString(d[:]) {
		t.Errorf("Hash with a long inner zero run = %q, want %q", got, hex.EncodeToString(d[:]))
	}
	wantContent(t, s, hex.EncodeToString(d[:]), gapped)

	// Different content, different name.
	write(t, s, "other", pattern(2, 5000), 0)
	if other := hashOf(t, s, "other"); other == sum || len(other) != 64 {
		t.Errorf("Hash of other content = %q (the first was %q)", other, sum)
	}

	// Hashing the content-addressed object names itself.
	if got := hashOf(t, s, sum); got != sum {
		t.Errorf("Hash of the content-addressed object = %q, want %q", got, sum)
	}

	// A rewritten object hashes to its new content, never a stale answer.
	write(t, s, "plain", []byte{0xff}, 0)
	changed := bytes.Clone(content)
	changed[0] = 0xff
	d = sha256.Sum256(changed)
	if got := hashOf(t, s, "plain"); got != hex.EncodeToString(d[:]) {
		t.Errorf("Hash after a write = %q, want %q", got, hex.EncodeToString(d[:]))
	}
	wantContent(t, s, sum, content) // the old content stays addressable

	// A deleted content-addressed object is stored again.
	if err := s.Delete(ctx, sum); err != nil {
		t.Fatalf("Delete(%q): %v", sum, err)
	}
	if got := hashOf(t, s, "padded"); got != sum {
		t.Errorf("Hash = %q, want %q", got, sum)
	}
	wantContent(t, s, sum, content)

	if sum, err := s.Hash(ctx, "missing"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("Hash of a missing object = %q, %v; want ErrNotFound", sum, err)
	}
}

// testHashZeros hashes objects with no content but zeros.
func testHashZeros(t *testing.T, h Harness) {
	s := h.Open(t)
	empty := sha256.Sum256(nil)
	want := hex.EncodeToString(empty[:])
	write(t, s, "zeros", make([]byte, 8192), 0)
	if err := s.Copy(t.Context(), "zeros", "empty", 0); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	for _, name := range []string{"zeros", "empty"} {
		if got := hashOf(t, s, name); got != want {
			t.Errorf("Hash(%q) = %q, want the hash of nothing %q", name, got, want)
		}
	}
	wantContent(t, s, want, nil)
}
