package mapper

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// crashBase is the world every crash case starts from: small blocks (1 KiB,
// 8 entries per map block), so that maps span several map blocks; a
// volume, its snapshot, a clone with writes of its own, and a removed map
// whose epoch a new one must carry on.
const crashBase = `
create vol 24K 1K
write vol 0 24K A
write vol 2K 1K B
snapshot vol s1
write vol 4K 6K C
clone s1 c1 30K
write c1 0 3K D
write c1 20K 10K E
create dead 8K 1K
write dead 0 8K F
delete dead
`

// crashCase is an operation whose plan is cut after every action.
type crashCase struct {
	op string
	// vanish: maps the operation removes (they may be live or removed
	// after a crash, and their content is not checked).
	vanish []string
	// cut: maps whose content may change (a shrink).
	cut []string
	// made: maps the operation makes, and the map whose content each must
	// show ("" for zeros) if it exists after a crash.
	made map[string]string
	// moved: a rename, old name to new name: one of the two must be live.
	moved [2]string
}

func TestCrashConsistency(t *testing.T) {
	for _, c := range []crashCase{
		{op: "snapshot vol s2", made: map[string]string{"s2": "vol"}},
		{op: "snapshot c1 dead", made: map[string]string{"dead": "c1"}},
		{op: "write vol 3K 10K"},
		{op: "write c1 10K 12K"},
		{op: "delete vol", vanish: []string{"vol"}},
		{op: "delete c1", vanish: []string{"c1"}},
		{op: "rename c1 c2", moved: [2]string{"c1", "c2"}},
		{op: "rename vol dead", moved: [2]string{"vol", "dead"}},
		{op: "resize vol 13500 force", cut: []string{"vol"}},
		{op: "resize c1 40K"},
		{op: "discard vol 1K 20K", cut: []string{"vol"}},
		{op: "discard c1 0 30K", cut: []string{"c1"}},
		{op: "create n 16K 1K", made: map[string]string{"n": ""}},
		{op: "create dead 16K 1K", made: map[string]string{"dead": ""}},
		{op: "clone s1 c3 40K", made: map[string]string{"c3": "s1"}},
		{op: "hash s1"},
	} {
		t.Run(strings.ReplaceAll(c.op, " ", "_"), func(t *testing.T) { testCrash(t, c) })
	}
}

func testCrash(t *testing.T, c crashCase) {
	base := newWorld(t)
	base.verbose = false
	for n, l := range strings.Split(crashBase, "\n") {
		base.line(n+1, l)
	}
	before := base.contents(nil)
	p := crashPlan(t, base, c)
	if p.Actions() == 0 {
		t.Fatalf("%s: empty plan", c.op)
	}
	names := []string{"vol", "s1", "c1", "dead", "n", "c2", "c3", "s2"}
	for limit := 0; limit <= p.Actions(); limit++ {
		w := newWorld(t)
		w.verbose = false
		w.store = base.store.clone()
		if _, err := w.store.run(p, limit); err != nil {
			t.Fatalf("after %d actions: %v", limit, err)
		}
		where := fmt.Sprintf("%s, killed after %d of %d actions", c.op, limit, p.Actions())
		// Restart: load every map from storage.
		live := map[string]*Map{}
		for _, name := range append(names, w.store.names(MapStore)...) {
			if _, ok := live[name]; ok || strings.Count(name, "_") > 0 {
				continue
			}
			m, _, err := w.store.load(name, false, NoSizeHint)
			switch {
			case err != nil && strings.Contains(err.Error(), "no such map"):
			case err != nil:
				t.Fatalf("%s: %q does not load: %v", where, name, err)
			case m != nil:
				live[name] = m
				w.maps[name] = m
			}
		}
		// No entry names an object that was not written (but a removal in
		// progress deletes objects before marking their entries).
		for name, m := range live {
			if contains(c.vanish, name) {
				continue
			}
			for i, e := range m.Stored() {
				if !e.zeroBlock() && !e.Deleted() && w.store.objs[DataStore][e.Name] == nil {
					t.Fatalf("%s: %q block %d names missing object %q", where, name, i, e.Name)
				}
			}
		}
		// Every map reads what it held, or what the operation promised.
		check := func(name, as string) {
			got, err := w.readVolume(live[name], 0, live[name].Size, false)
			want := before[as]
			if as == "" {
				want = make([]byte, live[name].Size)
			}
			if err != nil || !bytes.Equal(got[:min(len(got), len(want))], want) {
				t.Fatalf("%s: %q reads %s (%v), want %s", where, name, runs(0, got), err, runs(0, want))
			}
		}
		for name := range before {
			if live[name] == nil {
				if !contains(c.vanish, name) && name != c.moved[0] {
					t.Fatalf("%s: %q is gone", where, name)
				}
				continue
			}
			if !contains(c.vanish, name) && !contains(c.cut, name) {
				check(name, name)
			}
		}
		for name, from := range c.made {
			if live[name] != nil {
				check(name, from)
			}
		}
		if c.moved[0] != "" {
			switch {
			case live[c.moved[1]] != nil:
				check(c.moved[1], c.moved[0])
			case live[c.moved[0]] == nil:
				t.Fatalf("%s: neither %q nor %q is live", where, c.moved[0], c.moved[1])
			}
		}
		// Go on using the volumes: overwrite every writable one; no
		// read-only map may change.
		frozen := w.contents(c.vanish)
		for name, m := range live {
			if contains(c.vanish, name) {
				// A removal cut short is finished by removing again.
				r, err := Delete(m)
				if err != nil {
					t.Fatalf("%s: removing %q again: %v", where, name, err)
				}
				if _, err := w.store.run(r.Plan(), -1); err != nil {
					t.Fatal(err)
				}
				if got, h, err := w.store.load(name, false, NoSizeHint); got != nil || err != nil || !h.Deleted() {
					t.Fatalf("%s: %q after removing again: %v, %v", where, name, h, err)
				}
				continue
			}
			if m.ReadOnly() {
				continue
			}
			if m.Version != V2 {
				t.Fatalf("%s: %q is v%d", where, name, m.Version)
			}
			if err := w.do([]string{"write", name, "0", fmt.Sprint(m.Size), "Z"}); err != nil {
				t.Fatalf("%s: writing all of %q: %v", where, name, err)
			}
		}
		for name, m := range live {
			if !m.ReadOnly() {
				continue
			}
			got, err := w.readVolume(w.maps[name], 0, m.Size, false)
			if err != nil || !bytes.Equal(got, frozen[name]) {
				t.Fatalf("%s: read-only %q changed after writes to the volumes: %s (%v), was %s", where, name, runs(0, got), err, runs(0, frozen[name]))
			}
		}
	}
}

// crashPlan computes the operation's plan on the base world (which it does
// not change), and for hash runs the blocker's part (HASH of the objects).
func crashPlan(t *testing.T, w *world, c crashCase) Plan {
	args := strings.Fields(c.op)
	get := func(name string) *Map {
		m, err := w.get(name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	existing := func(name string) *Header {
		h, err := w.store.header(name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	size := func(i int) uint64 { return parseSize(t, args[i]) }
	var p Plan
	var err error
	switch args[0] {
	case "snapshot":
		var r *SnapshotResult
		if r, err = Snapshot(get(args[1]), args[2], existing(args[2])); err == nil {
			p = r.Plan()
		}
	case "write":
		var cus []CopyUp
		m := get(args[1])
		if _, cus, err = MapWrite(m, size(2), size(3)); err == nil {
			p = CopyUpPlan(m, cus)
		}
	case "delete":
		var r *DeleteResult
		if r, err = Delete(get(args[1])); err == nil {
			p = r.Plan()
		}
	case "rename":
		var r *RenameResult
		if r, err = Rename(get(args[1]), args[2], existing(args[2])); err == nil {
			p = r.Plan()
		}
	case "resize":
		var r *ResizeResult
		if r, err = Resize(get(args[1]), size(2), len(args) > 3); err == nil {
			p = r.Plan()
		}
	case "discard":
		var r *DiscardResult
		if r, err = Discard(get(args[1]), size(2), size(3)); err == nil {
			p = r.Plan()
		}
	case "create":
		var m *Map
		if m, err = Create(args[1], size(2), uint32(size(3)), existing(args[1])); err == nil {
			p = NewMapPlan(m)
		}
	case "clone":
		var m *Map
		if m, err = Clone(get(args[1]), args[2], size(3), existing(args[2])); err == nil {
			p = NewMapPlan(m)
		}
	case "hash":
		m := get(args[1])
		targets, err := HashTargets(m)
		if err != nil {
			t.Fatal(err)
		}
		hashes := map[uint64]string{}
		for _, e := range targets {
			if hashes[e.Index], err = w.store.hash(e.Name); err != nil {
				t.Fatal(err)
			}
		}
		img, err := Hashed(m, hashes)
		if err != nil {
			t.Fatal(err)
		}
		return NewMapPlan(img)
	default:
		t.Fatalf("unknown op %q", c.op)
	}
	if err != nil {
		t.Fatalf("%s: %v", c.op, err)
	}
	return p
}

// contents reads every live map of the world but those in skip.
func (w *world) contents(skip []string) map[string][]byte {
	out := map[string][]byte{}
	names := make([]string, 0, len(w.maps))
	for name := range w.maps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if contains(skip, name) {
			continue
		}
		m := w.maps[name]
		data, err := w.readVolume(m, 0, m.Size, false)
		if err != nil {
			w.t.Fatalf("reading %q: %v", name, err)
		}
		out[name] = data
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
