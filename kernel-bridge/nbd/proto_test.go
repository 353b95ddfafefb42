package nbd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	s = string(bytes.Join(bytes.Fields([]byte(s)), nil))
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoldenBytes checks the bytes of the key messages against values
// written out by hand from doc/proto.md.
func TestGoldenBytes(t *testing.T) {
	b := newMemBackend()
	d := b.add("disk", 1<<20, CanFlush|CanFUA)
	d.writeAt([]byte("hello"), 0)

	var in script
	in.u32(clientFixedNewstyle | clientNoZeroes)
	in.opt(0x1234, []byte{1, 2, 3})
	in.opt(optExportName, []byte("disk"))
	in.req(0, CmdRead, 0x0102030405060708, 0, 5, nil)
	in.req(0, CmdDisc, 9, 0, 0, nil)
	out, err := runScript(t, b, in.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	msg := "option 4660 not supported"
	want := unhex(t, `
		4e42444d41474943 49484156454f5054 0003
		0003e889045565a9 00001234 80000001`+fmt.Sprintf("%08x", len(msg))+hex.EncodeToString([]byte(msg))+`
		0000000000100000 000d
		67446698 00000000 0102030405060708 68656c6c6f`)
	if !bytes.Equal(out, want) {
		t.Fatalf("got\n%s\nwant\n%s", hex.Dump(out), hex.Dump(want))
	}

	// Structured: a READ of 8 KiB at 4 KiB where the first 4 KiB are
	// zero and the rest data, a BLOCK_STATUS, and an error chunk.
	b = newMemBackend()
	d = b.add("disk", 1<<20, CanFlush)
	d.writeAt(bytes.Repeat([]byte{0xaa}, 4096), 8192)
	in.Reset()
	in.Write(goScript("disk", true).Bytes())
	in.req(0, CmdRead, 1, 4096, 8192, nil)
	in.req(0, CmdBlockStatus, 2, 0, 16384, nil)
	in.req(0, CmdRead, 3, 1<<20, 1, nil)
	in.req(0, CmdDisc, 4, 0, 0, nil)
	out, err = runScript(t, b, in.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(out, unhex(t, "668e33ef"))
	if i < 0 {
		t.Fatalf("no structured chunk in\n%s", hex.Dump(out))
	}
	errMsg := errPastEnd.msg
	want = unhex(t, `
		668e33ef 0000 0002 0000000000000001 0000000c  0000000000001000 00001000
		668e33ef 0001 0001 0000000000000001 00001008  0000000000002000`+
		hex.EncodeToString(bytes.Repeat([]byte{0xaa}, 4096))+`
		668e33ef 0001 0005 0000000000000002 0000001c  00000001
		         00002000 00000003  00001000 00000000  00001000 00000003
		668e33ef 0001 8001 0000000000000003 `+fmt.Sprintf("%08x", 6+len(errMsg))+`
		         00000016 `+fmt.Sprintf("%04x", len(errMsg))+hex.EncodeToString([]byte(errMsg)))
	if got := out[i:]; !bytes.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
	}
}

// TestGoldenTranscripts replays client scripts and compares everything
// the server sent with testdata/*.golden (go test -run Golden -update
// rewrites them).
func TestGoldenTranscripts(t *testing.T) {
	backend := func() *memBackend {
		b := newMemBackend()
		d := b.add("disk", 64<<10, memAllFlags)
		d.description = "a test disk"
		d.writeAt(pattern(0, 4096), 0)
		d.writeAt(pattern(12288, 100), 12288)
		b.add("ro", 8192, ReadOnly|CanFlush)
		return b
	}
	cases := map[string]func() *script{
		"export_name": func() *script {
			s := new(script)
			s.u32(clientFixedNewstyle)
			s.opt(optExportName, []byte("disk"))
			s.req(0, CmdRead, 1, 0, 16, nil)
			s.req(CmdFlagFUA, CmdWrite, 2, 100, 4, []byte("abcd"))
			s.req(0, CmdRead, 3, 64<<10, 1, nil)
			s.req(0, 42, 4, 0, 0, nil)
			s.req(0, CmdDisc, 5, 0, 0, nil)
			return s
		},
		"haggling": func() *script {
			s := new(script)
			s.u32(clientFixedNewstyle)
			s.opt(optStartTLS, nil)
			s.opt(0xdead, []byte("junk"))
			s.opt(optList, nil)
			s.opt(optList, []byte("x"))
			s.opt(optSetMetaContext, metaData("disk", metaBaseAllocation)) // before STRUCTURED_REPLY
			s.opt(optStructuredReply, nil)
			s.opt(optListMetaContext, metaData("disk"))
			s.opt(optListMetaContext, metaData("disk", "base:", "qemu:dirty-bitmap:x"))
			s.opt(optSetMetaContext, metaData("disk", "base:allocation", "other:thing"))
			s.opt(optInfo, infoData("nosuch"))
			s.opt(optInfo, infoData("disk", infoName, infoDescription, 77))
			s.opt(optGo, []byte{0, 0, 0, 9, 'x'})
			s.opt(optGo, infoData("ro", infoBlockSize))
			s.req(0, CmdWrite, 1, 0, 3, []byte("abc"))
			s.req(0, CmdTrim, 2, 0, 4096, nil)
			s.req(0, CmdRead, 3, 0, 8192, nil)
			s.req(0, CmdBlockStatus, 4, 0, 8192, nil) // meta context was for "disk"
			s.req(0, CmdDisc, 5, 0, 0, nil)
			return s
		},
		"structured": func() *script {
			s := goScript("disk", true)
			s.req(0, CmdRead, 1, 0, 20000, nil)
			s.req(CmdFlagDF, CmdRead, 2, 8192, 8192, nil)
			s.req(0, CmdBlockStatus, 3, 0, 64<<10, nil)
			s.req(CmdFlagReqOne, CmdBlockStatus, 4, 100, 30000, nil)
			s.req(0, CmdWriteZeroes, 5, 0, 8192, nil)
			s.req(CmdFlagFastZero|CmdFlagNoHole, CmdWriteZeroes, 6, 0, 8192, nil)
			s.req(0, CmdRead, 7, 0, 0, nil)
			s.req(0, CmdFlush, 8, 0, 0, nil)
			s.req(0x100, CmdRead, 9, 0, 1, nil)
			s.req(0, CmdDisc, 10, 0, 0, nil)
			return s
		},
		"abort": func() *script {
			s := new(script)
			s.u32(clientFixedNewstyle | clientNoZeroes)
			s.opt(optAbort, nil)
			return s
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			b := backend()
			out, err := runScript(t, b, build().Bytes())
			if err != nil {
				t.Fatalf("ServeConn: %v", err)
			}
			b.checkNoLeaks(t)
			got := []byte(hex.Dump(out))
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("transcript differs from %s:\n%s", path, got)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	rw := exportLimits{size: 1 << 20, tflags: transmissionFlags(memAllFlags, true), minBlock: 1, maxBlock: 64 << 10, structured: true, allocCtx: true}
	ro := rw
	ro.tflags = transmissionFlags(ReadOnly|CanFlush, false)
	ro.structured, ro.allocCtx = false, false
	aligned := rw
	aligned.minBlock = 512
	cases := []struct {
		name string
		l    exportLimits
		r    request
		want *requestError
	}{
		{"read ok", rw, request{typ: CmdRead, offset: 0, length: 4096}, nil},
		{"read to end", rw, request{typ: CmdRead, offset: 1<<20 - 1, length: 1}, nil},
		{"read past end", rw, request{typ: CmdRead, offset: 1<<20 - 1, length: 2}, errPastEnd},
		{"read offset overflow", rw, request{typ: CmdRead, offset: ^uint64(0), length: 2}, errPastEnd},
		{"read too long", rw, request{typ: CmdRead, length: 64<<10 + 1}, errTooLong},
		{"write past end", rw, request{typ: CmdWrite, offset: 1 << 20, length: 1}, errWritePastEnd},
		{"write read-only", ro, request{typ: CmdWrite, length: 1}, errReadOnly},
		{"trim read-only", ro, request{typ: CmdTrim, length: 1}, errReadOnly},
		{"zero read-only", ro, request{typ: CmdWriteZeroes, length: 1}, errReadOnly},
		{"trim past end", rw, request{typ: CmdTrim, offset: 1 << 20, length: 1}, errPastEnd},
		{"trim long", rw, request{typ: CmdTrim, length: 1 << 20}, nil},
		{"zero long", rw, request{typ: CmdWriteZeroes, length: 1 << 20}, nil},
		{"cache too long", rw, request{typ: CmdCache, length: 1 << 20}, errTooLong},
		{"unknown command", rw, request{typ: 9}, errUnknownCmd},
		{"disc is not a command here", rw, request{typ: CmdDisc}, errUnknownCmd},
		{"unknown flag", rw, request{typ: CmdRead, flags: 1 << 7, length: 1}, errBadFlags},
		{"fua without SEND_FUA", ro, request{typ: CmdFlush, flags: CmdFlagFUA}, errBadFlags},
		{"fua on flush", rw, request{typ: CmdFlush, flags: CmdFlagFUA}, nil},
		{"no_hole on write", rw, request{typ: CmdWrite, flags: CmdFlagNoHole, length: 1}, errBadFlags},
		{"df without structured", ro, request{typ: CmdRead, flags: CmdFlagDF, length: 1}, errBadFlags},
		{"df on read", rw, request{typ: CmdRead, flags: CmdFlagDF, length: 1}, nil},
		{"req_one on read", rw, request{typ: CmdRead, flags: CmdFlagReqOne, length: 1}, errBadFlags},
		{"fast zero", rw, request{typ: CmdWriteZeroes, flags: CmdFlagFastZero, length: 1}, nil},
		{"flush not offered", exportLimits{size: 1, tflags: flagHasFlags, maxBlock: 1}, request{typ: CmdFlush}, errNotAdvertised},
		{"cache not offered", ro, request{typ: CmdCache, length: 1}, errNotAdvertised},
		{"block status without context", ro, request{typ: CmdBlockStatus, length: 1}, errNoMetaContext},
		{"block status empty", rw, request{typ: CmdBlockStatus, length: 0}, errPastEnd},
		{"block status long", rw, request{typ: CmdBlockStatus, length: 1 << 20}, nil},
		{"unaligned", aligned, request{typ: CmdRead, offset: 512, length: 100}, errUnaligned},
		{"aligned", aligned, request{typ: CmdWrite, offset: 512, length: 1024}, nil},
	}
	for _, c := range cases {
		if got := validate(c.r, c.l); got != c.want {
			t.Errorf("%s: validate = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTransmissionFlags(t *testing.T) {
	cases := []struct {
		f          ExportFlags
		structured bool
		want       uint16
	}{
		{0, false, flagHasFlags},
		{0, true, flagHasFlags | flagSendDF},
		{ReadOnly | CanTrim | CanZero | CanFastZero | CanFlush, false, flagHasFlags | flagReadOnly | flagSendFlush},
		{CanFastZero, false, flagHasFlags},
		{memAllFlags, false, flagHasFlags | flagSendFlush | flagSendFUA | flagSendTrim | flagSendWriteZeroes |
			flagSendFastZero | flagSendCache | flagCanMultiConn},
	}
	for _, c := range cases {
		if got := transmissionFlags(c.f, c.structured); got != c.want {
			t.Errorf("transmissionFlags(%#x, %v) = %#x, want %#x", c.f, c.structured, got, c.want)
		}
	}
}

func TestErrno(t *testing.T) {
	cases := []struct {
		err  error
		want uint32
	}{
		{nil, 0},
		{syscall.EIO, 5},
		{fmt.Errorf("wrapped: %w", syscall.ENOSPC), 28},
		{syscall.EDQUOT, 28},
		{syscall.EPERM, 1},
		{syscall.EROFS, 1},
		{syscall.ENOMEM, 12},
		{syscall.EINVAL, 22},
		{syscall.EOVERFLOW, 75},
		{syscall.ENOTSUP, 95},
		{syscall.ESHUTDOWN, 108},
		{syscall.EBADF, 5},
		{errors.New("anything"), 5},
		{&OffsetError{Offset: 3, Err: syscall.ENOSPC}, 28},
		{ErrServerClosed, 108},
		{errTooLong, 22},
	}
	for _, c := range cases {
		if got := errnoOf(c.err); got != c.want {
			t.Errorf("errnoOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if got := optErrorOf(fmt.Errorf("x: %w", ErrUnknownExport)); got != repErrUnknown {
		t.Errorf("optErrorOf(unknown) = %#x", got)
	}
	if got := optErrorOf(ErrExportDenied); got != repErrPolicy {
		t.Errorf("optErrorOf(denied) = %#x", got)
	}
}

func TestNormalizeExtents(t *testing.T) {
	H := StateHole | StateZero
	cases := []struct {
		in     []Extent
		length uint32
		reqOne bool
		want   []Extent
	}{
		{[]Extent{{100, 0}}, 50, false, []Extent{{50, 0}}},
		{[]Extent{{10, 0}, {0, H}, {10, 0}, {10, H}}, 100, false, []Extent{{20, 0}, {10, H}}},
		{[]Extent{{10, 0}, {10, H}}, 100, true, []Extent{{10, 0}}},
		{[]Extent{{10, 0xff}}, 100, false, []Extent{{10, H}}},
		{nil, 100, false, nil},
		{[]Extent{{0, 0}}, 100, false, nil},
	}
	for _, c := range cases {
		got := normalizeExtents(nil, c.in, c.length, c.reqOne)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("normalizeExtents(%v, %d, %v) = %v, want %v", c.in, c.length, c.reqOne, got, c.want)
		}
	}
}

// TestReadChunks checks which chunks a structured READ reply is cut into.
func TestReadChunks(t *testing.T) {
	z := func(n int) []byte { return make([]byte, n) }
	d := func(n int) []byte { return bytes.Repeat([]byte{1}, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name string
		off  uint64
		data []byte
		df   bool
		want string // D/H offset+length, in request-relative offsets
	}{
		{"small", 0, z(100), false, "D0+100"},
		{"all zero", 0, z(16384), false, "H0+16384"},
		{"all data", 0, d(16384), false, "D0+16384"},
		{"df", 0, z(16384), true, "D0+16384"},
		{"mixed", 0, cat(d(4096), z(8192), d(4096)), false, "D0+4096 H4096+8192 D12288+4096"},
		{"unaligned ends are data", 100, cat(z(3996), z(4096), z(200)), false, "D0+3996 H3996+4096 D8092+200"},
		{"zero tail shorter than a block", 0, cat(d(4096), z(100)), false, "D0+4196"},
		{"coalesce", 0, cat(z(4096), z(4096), d(1), z(4095)), false, "H0+8192 D8192+4096"},
	}
	for _, c := range cases {
		cmd := &Command{Type: CmdRead, Offset: c.off, Length: uint32(len(c.data)), df: c.df, Buf: &memBuffer{b: c.data}}
		cmd.appendRead()
		var got []string
		for i, s := range cmd.spans {
			h := cmd.hdr[s.hdrOff:s.hdrEnd]
			typ := be.Uint16(h[6:])
			off := be.Uint64(h[20:]) - c.off
			done := be.Uint16(h[4:])&replyFlagDone != 0
			if done != (i == len(cmd.spans)-1) {
				t.Errorf("%s: chunk %d has DONE=%v", c.name, i, done)
			}
			switch typ {
			case replyTypeOffsetData:
				if !bytes.Equal(s.data, c.data[off:off+uint64(len(s.data))]) {
					t.Errorf("%s: chunk %d carries the wrong data", c.name, i)
				}
				got = append(got, fmt.Sprintf("D%d+%d", off, len(s.data)))
			case replyTypeOffsetHole:
				got = append(got, fmt.Sprintf("H%d+%d", off, be.Uint32(h[28:])))
			}
		}
		if s := fmt.Sprint(got); s != "["+c.want+"]" {
			t.Errorf("%s: chunks %s, want [%s]", c.name, s, c.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	if _, _, ok := parseInfoRequest([]byte{0, 0, 0, 1, 'a', 0}); ok {
		t.Error("parseInfoRequest accepted a short request")
	}
	if name, infos, ok := parseInfoRequest(infoData("ab", 3, 1)); !ok || name != "ab" || len(infos) != 4 {
		t.Errorf("parseInfoRequest = %q %v %v", name, infos, ok)
	}
	if _, _, ok := parseInfoRequest(append(infoData("ab", 3), 0)); ok {
		t.Error("parseInfoRequest accepted trailing bytes")
	}
	if name, qs, ok := parseMetaRequest(metaData("x", "base:allocation", "a:b")); !ok || name != "x" || len(qs) != 2 || qs[1] != "a:b" {
		t.Errorf("parseMetaRequest = %q %q %v", name, qs, ok)
	}
	bad := metaData("x", "base:allocation")
	bad[len(bad)-1-len("base:allocation")] = 0xff // query length beyond the data
	if _, _, ok := parseMetaRequest(bad); ok {
		t.Error("parseMetaRequest accepted a query longer than the option")
	}
	huge := (&script{}).u32(1).u32('x').u32(0xffffffff).Bytes()
	if _, _, ok := parseMetaRequest(huge); ok {
		t.Error("parseMetaRequest accepted 2^32-1 queries in 12 bytes")
	}
}
