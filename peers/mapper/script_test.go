package mapper

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestScripts runs the state-machine scripts testdata/scripts/*.txt against
// the fake blockers, the way mapperd and vlmcd would, and compares what
// they print with the .golden files beside them (go test -update rewrites
// those). After every step each map is loaded back from the fake storage
// and must equal the map in memory: plans must store all they change.
//
// Script lines (sizes take K, M, G, T suffixes; '#' starts a comment):
//
//	create VOL SIZE [BLOCKSIZE]
//	write VOL OFFSET LENGTH CHAR     MAPW, copy-ups, then the data: CHAR bytes
//	                                 (the word "zero" writes zero bytes)
//	read VOL OFFSET LENGTH           MAPR, then the data, run-length encoded
//	snapshot VOL SNAP
//	clone SNAP VOL [SIZE]
//	resize VOL SIZE [force]
//	discard VOL OFFSET LENGTH        whole blocks in the range become zero blocks
//	delete VOL
//	rename VOL NEW
//	hash SNAP                        content-address SNAP, print the image name
//	show VOL                         the map: header and written entries
//	objects                          the data objects and their written bytes
//	list [PREFIX [AFTER]]            the live volumes LIST finds in the map store
//	! COMMAND ...                    the command must fail; prints the error
//	!ErrName COMMAND ...             ... with that sentinel error (errors.Is)
//	quiet / verbose                  stop / start printing plans
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/scripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := runScript(t, string(src))
			golden := strings.TrimSuffix(f, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, diffLines(string(want), got))
			}
		})
	}
}

var sentinels = map[string]error{
	"ErrBadName": ErrBadName, "ErrBadFormat": ErrBadFormat, "ErrNotUpgraded": ErrNotUpgraded,
	"ErrInvalidSize": ErrInvalidSize, "ErrTooLarge": ErrTooLarge, "ErrShrink": ErrShrink,
	"ErrOutOfRange": ErrOutOfRange, "ErrReadOnly": ErrReadOnly, "ErrDeleted": ErrDeleted,
	"ErrExists": ErrExists, "ErrNotSnapshot": ErrNotSnapshot, "ErrEpochExhausted": ErrEpochExhausted,
	"ErrConflict": ErrConflict, "ErrNotFound": errNotFound,
}

// errNotFound is the fake peer's "no such map".
var errNotFound = errors.New("no such map")

// world is a mapperd with its map cache, over fake blockers.
type world struct {
	t       *testing.T
	store   *fakeStore
	maps    map[string]*Map    // live maps, as cached by the peer
	deleted map[string]*Header // headers of maps marked deleted
	out     *bytes.Buffer
	verbose bool
}

func newWorld(t *testing.T) *world {
	return &world{t: t, store: newFakeStore(), maps: map[string]*Map{}, deleted: map[string]*Header{}, out: new(bytes.Buffer), verbose: true}
}

func runScript(t *testing.T, src string) string {
	w := newWorld(t)
	for n, line := range strings.Split(src, "\n") {
		w.line(n+1, line)
	}
	return w.out.String()
}

// line runs one script line.
func (w *world) line(n int, line string) {
	t := w.t
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	args := strings.Fields(line)
	if len(args) == 0 {
		return
	}
	fail := strings.HasPrefix(args[0], "!")
	var want error
	if fail {
		if name := args[0][1:]; name != "" {
			if want = sentinels[name]; want == nil {
				t.Fatalf("line %d: unknown error %q", n, name)
			}
		}
		args = args[1:]
	}
	fmt.Fprintf(w.out, "> %s\n", strings.Join(args, " "))
	err := w.do(args)
	switch {
	case fail && err == nil:
		t.Errorf("line %d: %q succeeded, the script expects an error", n, line)
	case fail && want != nil && !errors.Is(err, want):
		t.Errorf("line %d: %q: error %v, want %v", n, line, err, want)
		fmt.Fprintf(w.out, "UNEXPECTED error: %v\n", err)
	case fail:
		fmt.Fprintf(w.out, "error: %v\n", err)
	case err != nil:
		t.Errorf("line %d: %q: %v", n, line, err)
		fmt.Fprintf(w.out, "UNEXPECTED error: %v\n", err)
	}
	w.checkStorage(n)
}

func (w *world) get(name string) (*Map, error) {
	if m := w.maps[name]; m != nil {
		return m, nil
	}
	m, h, err := w.store.load(name, false, NoSizeHint)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: %q (epoch %d)", ErrDeleted, name, h.Epoch)
	}
	w.maps[name] = m
	return m, nil
}

func (w *world) run(p Plan) error {
	if w.verbose {
		w.out.WriteString(indent(p.String()))
	}
	_, err := w.store.run(p, -1)
	return err
}

func (w *world) do(args []string) error {
	need := func(n int) error {
		if len(args) < n {
			return fmt.Errorf("%s needs %d arguments", args[0], n-1)
		}
		return nil
	}
	switch args[0] {
	case "quiet", "verbose":
		w.verbose = args[0] == "verbose"
		return nil
	case "create":
		if err := need(3); err != nil {
			return err
		}
		size := parseSize(w.t, args[2])
		var bs uint64
		if len(args) > 3 {
			bs = parseSize(w.t, args[3])
		}
		existing, err := w.store.header(args[1])
		if err != nil {
			return err
		}
		m, err := Create(args[1], size, uint32(bs), existing)
		if err != nil {
			return err
		}
		if err := w.run(NewMapPlan(m)); err != nil {
			return err
		}
		w.setMap(m)
		w.show(m)
	case "write":
		if err := need(5); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		off, n := parseSize(w.t, args[2]), parseSize(w.t, args[3])
		segs, cus, err := MapWrite(m, off, n)
		if err != nil {
			return err
		}
		for _, c := range cus {
			fmt.Fprintf(w.out, "copy-up %d: %v -> %v (copy %v)\n", c.Index, c.From, c.To, c.NeedsCopy())
		}
		if len(cus) > 0 {
			if err := w.run(CopyUpPlan(m, cus)); err != nil {
				return err
			}
			if m, err = ApplyCopyUps(m, cus); err != nil {
				return err
			}
			w.maps[m.Name] = m
		}
		for _, s := range segs {
			fmt.Fprintf(w.out, "segment %s\n", fmtSegment(s))
			c := args[4][0]
			if args[4] == "zero" {
				c = 0
			}
			w.store.write(DataStore, s.Object, s.Offset, bytes.Repeat([]byte{c}, int(s.Length)))
		}
	case "read":
		if err := need(4); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		data, err := w.readVolume(m, parseSize(w.t, args[2]), parseSize(w.t, args[3]), true)
		if err != nil {
			return err
		}
		fmt.Fprintf(w.out, "data %s\n", runs(parseSize(w.t, args[2]), data))
	case "snapshot":
		if err := need(3); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		existing, err := w.store.header(args[2])
		if err != nil {
			return err
		}
		r, err := Snapshot(m, args[2], existing)
		if err != nil {
			return err
		}
		if err := w.run(r.Plan()); err != nil {
			return err
		}
		w.setMap(r.Source)
		w.setMap(r.Snapshot)
		w.show(r.Source)
		w.show(r.Snapshot)
	case "clone":
		if err := need(3); err != nil {
			return err
		}
		parent, err := w.get(args[1])
		if err != nil {
			return err
		}
		var size uint64
		if len(args) > 3 {
			size = parseSize(w.t, args[3])
		}
		existing, err := w.store.header(args[2])
		if err != nil {
			return err
		}
		m, err := Clone(parent, args[2], size, existing)
		if err != nil {
			return err
		}
		if err := w.run(NewMapPlan(m)); err != nil {
			return err
		}
		w.setMap(m)
		w.show(m)
	case "resize":
		if err := need(3); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		r, err := Resize(m, parseSize(w.t, args[2]), len(args) > 3 && args[3] == "force")
		if err != nil {
			return err
		}
		if r.Tail != nil {
			fmt.Fprintf(w.out, "cut %d: %v -> %v (%d bytes)\n", r.Tail.Index, r.Tail.From, r.Tail.To, r.Tail.Size)
		}
		if err := w.run(r.Plan()); err != nil {
			return err
		}
		w.setMap(r.Map)
		w.show(r.Map)
	case "discard":
		if err := need(4); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		r, err := Discard(m, parseSize(w.t, args[2]), parseSize(w.t, args[3]))
		if err != nil {
			return err
		}
		if err := w.run(r.Plan()); err != nil {
			return err
		}
		w.setMap(r.Map)
		w.show(r.Map)
	case "delete":
		if err := need(2); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		r, err := Delete(m)
		if err != nil {
			return err
		}
		if err := w.run(r.Plan()); err != nil {
			return err
		}
		w.setMap(r.Map)
		w.show(r.Map)
	case "rename":
		if err := need(3); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		existing, err := w.store.header(args[2])
		if err != nil {
			return err
		}
		r, err := Rename(m, args[2], existing)
		if err != nil {
			return err
		}
		if err := w.run(r.Plan()); err != nil {
			return err
		}
		delete(w.maps, m.Name)
		old := r.Old
		w.deleted[m.Name] = &old
		w.setMap(r.Map)
		w.show(r.Map)
	case "hash":
		if err := need(2); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		targets, err := HashTargets(m)
		if err != nil {
			return err
		}
		before := w.store.dataBytes()
		hashes := map[uint64]string{}
		for _, e := range targets {
			if hashes[e.Index], err = w.store.hash(e.Name); err != nil {
				return err
			}
		}
		img, err := Hashed(m, hashes)
		if err != nil {
			return err
		}
		fmt.Fprintf(w.out, "hashed %d objects, data bytes %d -> %d\n", len(targets), before, w.store.dataBytes())
		if old, ok := w.maps[img.Name]; ok {
			if !old.Equal(img) {
				return fmt.Errorf("%w: image %q differs", ErrExists, img.Name)
			}
			fmt.Fprintf(w.out, "image %s exists\n", img.Name)
			return nil
		}
		if err := w.run(NewMapPlan(img)); err != nil {
			return err
		}
		w.setMap(img)
		w.show(img)
	case "show":
		if err := need(2); err != nil {
			return err
		}
		m, err := w.get(args[1])
		if err != nil {
			return err
		}
		w.show(m)
	case "objects":
		for _, name := range w.store.names(DataStore) {
			o := w.store.objs[DataStore][name]
			fmt.Fprintf(w.out, "object %s size %d data %s\n", name, o.size, runs(0, o.b))
		}
	case "list":
		return w.list(append(args[1:], "", "")[:2])
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	return nil
}

// list prints the live volumes of the map store whose names start with
// args[0] and sort after args[1], as mapperd's LIST finds them: the
// candidates by name, then their headers.
func (w *world) list(args []string) error {
	names := w.store.names(MapStore)
	cands := Candidates(names, args[0], args[1])
	fmt.Fprintf(w.out, "%d objects, %d candidates\n", len(names), len(cands))
	for _, c := range cands {
		area, _ := w.store.read(MapStore, c.Object, 0, HeaderLen)
		h, live, err := ListHeader(area)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Object, err)
		}
		if live {
			fmt.Fprintf(w.out, "volume %s (object %s) v%d size %d bs %d flags %s\n", c.Volume, c.Object, h.Version, h.Size, h.BlockSize, mapFlags(h.Flags))
		}
	}
	return nil
}

func (w *world) setMap(m *Map) {
	if m.Deleted() {
		delete(w.maps, m.Name)
		h := m.Header
		w.deleted[m.Name] = &h
		return
	}
	delete(w.deleted, m.Name)
	w.maps[m.Name] = m
}

// readVolume reads through the map, as vlmcd: zero segments without I/O,
// others from the data store, where the object must exist.
func (w *world) readVolume(m *Map, off, n uint64, print bool) ([]byte, error) {
	segs, err := MapRead(m, off, n)
	if err != nil {
		return nil, err
	}
	var data []byte
	for _, s := range segs {
		if print {
			fmt.Fprintf(w.out, "segment %s\n", fmtSegment(s))
		}
		if s.Zero {
			data = append(data, make([]byte, s.Length)...)
			continue
		}
		p, ok := w.store.read(DataStore, s.Object, s.Offset, s.Length)
		if !ok {
			return nil, fmt.Errorf("block %d names missing object %q", s.Index, s.Object)
		}
		data = append(data, p...)
	}
	return data, nil
}

// checkStorage loads every map back from storage and compares it with the
// one in memory.
func (w *world) checkStorage(line int) {
	for name, m := range w.maps {
		got, h, err := w.store.load(name, false, NoSizeHint)
		if err != nil {
			w.t.Errorf("line %d: loading %q: %v", line, name, err)
			continue
		}
		if got == nil {
			w.t.Errorf("line %d: %q is deleted on storage (epoch %d), live in memory", line, name, h.Epoch)
			continue
		}
		if !got.Equal(m) {
			w.t.Errorf("line %d: %q on storage differs from memory:\nstorage:\n%smemory:\n%s", line, name, dumpMap(got), dumpMap(m))
		}
	}
	for name, want := range w.deleted {
		h, err := w.store.header(name)
		if err != nil || h == nil || *h != *want {
			w.t.Errorf("line %d: deleted %q: header on storage %v (%v), want %v", line, name, h, err, *want)
		}
	}
}

func (w *world) show(m *Map) { w.out.WriteString(dumpMap(m)) }

func dumpMap(m *Map) string {
	var b strings.Builder
	fmt.Fprintf(&b, "map %s v%d size %d bs %d flags %s epoch %d entries %d\n", m.Name, m.Version, m.Size, m.BlockSize, mapFlags(m.Flags), m.Epoch, m.Len())
	zero := uint64(0)
	for i, e := range m.All() {
		if e == ZeroEntry {
			zero++
			continue
		}
		fmt.Fprintf(&b, "  %d %v\n", i, e)
	}
	if zero > 0 {
		fmt.Fprintf(&b, "  (%d zero)\n", zero)
	}
	return b.String()
}

func mapFlags(f MapFlags) string {
	var s []string
	if f&MapReadOnly != 0 {
		s = append(s, "readonly")
	}
	if f&MapDeleted != 0 {
		s = append(s, "deleted")
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func fmtSegment(s Segment) string {
	z := ""
	if s.Zero {
		z = " zero"
	}
	return fmt.Sprintf("%d %s @%d +%d%s", s.Index, s.Object, s.Offset, s.Length, z)
}

// runs describes data as runs of equal bytes: "[0,4096) A [4096,8192) 0".
func runs(base uint64, data []byte) string {
	if len(data) == 0 {
		return "(none)"
	}
	var b strings.Builder
	start := 0
	for i := 1; i <= len(data); i++ {
		if i == len(data) || data[i] != data[start] {
			c := "0"
			if data[start] != 0 {
				c = string(data[start])
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "[%s,%s) %s", fmtSize(base+uint64(start)), fmtSize(base+uint64(i)), c)
			start = i
		}
	}
	return b.String()
}

func fmtSize(n uint64) string {
	for _, u := range []struct {
		s string
		v uint64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return strconv.FormatUint(n/u.v, 10) + u.s
		}
	}
	return strconv.FormatUint(n, 10)
}

func parseSize(t *testing.T, s string) uint64 {
	t.Helper()
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("bad size %q: %v", s, err)
	}
	return v * mult
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

// diffLines shows the first lines where want and got differ.
func diffLines(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(wl), len(gl)) && shown < 20; i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, w, g)
			shown++
		}
	}
	return b.String()
}
