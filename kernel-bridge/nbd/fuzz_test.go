package nbd

import (
	"bytes"
	"testing"
)

// fuzzBackend is a small disk with some data and some holes.
func fuzzBackend() *memBackend {
	b := newMemBackend()
	d := b.add("disk", 1<<20, memAllFlags)
	d.writeAt(pattern(0, 10000), 0)
	d.failOff, d.failLen = 512<<10, 4096
	b.add("", 4096, ReadOnly)
	return b
}

// fuzzServe serves one connection whose client sends in; it must neither
// panic nor hang nor leak buffers or exports, whatever in holds.
func fuzzServe(t *testing.T, in []byte) {
	b := fuzzBackend()
	srv := NewServer(b, Config{Log: testLog(), MaxRequest: 256 << 10})
	srv.inlineBlockStatus = true
	fc := &fakeConn{r: bytes.NewReader(in)}
	srv.ServeConn(fc)
	b.checkNoLeaks(t)
}

// FuzzHandshake feeds arbitrary client bytes from the very start of the
// connection: client flags, options, and whatever follows.
func FuzzHandshake(f *testing.F) {
	f.Add(goScript("disk", true).Bytes())
	f.Add(goScript("disk", false).Bytes())
	s := new(script)
	s.u32(clientFixedNewstyle | clientNoZeroes)
	s.opt(optList, nil).opt(0x4242, []byte("x")).opt(optStructuredReply, nil)
	s.opt(optListMetaContext, metaData("disk", "base:", "x-y:z"))
	s.opt(optInfo, infoData("disk", infoName, infoDescription, infoBlockSize))
	s.opt(optExportName, []byte("disk"))
	f.Add(s.Bytes())
	f.Add((&script{}).u32(clientFixedNewstyle).opt(optAbort, nil).Bytes())
	f.Add((&script{}).u32(clientFixedNewstyle).opt(optGo, []byte{0xff, 0xff, 0xff, 0xff, 0, 0}).Bytes())
	f.Add((&script{}).u32(clientFixedNewstyle).opt(optSetMetaContext, []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}).Bytes())
	f.Add((&script{}).u32(clientFixedNewstyle).u64(magicOpt).u32(99).u32(0xffffffff).Bytes())
	f.Add([]byte{0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzServe(t, in)
	})
}

// FuzzRequest feeds arbitrary bytes as the transmission phase, after a
// good handshake (structured or not, by the first byte).
func FuzzRequest(f *testing.F) {
	reqs := func(structured byte, s *script) []byte { return append([]byte{structured}, s.Bytes()...) }
	f.Add(reqs(1, (&script{}).req(0, CmdRead, 1, 0, 4096, nil).req(0, CmdDisc, 2, 0, 0, nil)))
	f.Add(reqs(0, (&script{}).req(CmdFlagFUA, CmdWrite, 1, 100, 5, []byte("hello")).req(0, CmdFlush, 2, 0, 0, nil)))
	f.Add(reqs(1, (&script{}).req(CmdFlagReqOne, CmdBlockStatus, 1, 0, 1<<20, nil).req(0, CmdTrim, 2, 0, 8192, nil)))
	f.Add(reqs(1, (&script{}).req(CmdFlagFastZero|CmdFlagNoHole, CmdWriteZeroes, 1, 0, 8192, nil).req(0, CmdCache, 2, 0, 4096, nil)))
	f.Add(reqs(1, (&script{}).req(CmdFlagDF, CmdRead, 1, 512<<10, 8192, nil)))
	f.Add(reqs(0, (&script{}).req(0, CmdWrite, 1, 0, 1<<30, []byte("lies about its length"))))
	f.Add(reqs(0, (&script{}).req(0, CmdWrite, 1, 1<<20, 300<<10, nil)))
	f.Add(reqs(1, (&script{}).req(0, 77, 1, 0, 0, nil).u32(0xdeadbeef)))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		prefix := goScript("disk", in[0]&1 == 1).Bytes()
		fuzzServe(t, append(prefix, in[1:]...))
	})
}
