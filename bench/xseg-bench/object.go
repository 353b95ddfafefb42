package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/archipelago-go/archipelago/bench/latency"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

const objectHelp = `Usage: xseg-bench object --segment NAME --port N [flags]

Closed loop of object READs or WRITEs against a blocker port (filed, radosd):
--iodepth requests in flight, each --size bytes at an offset aligned to
--size in one of --objects objects of --object-size bytes, named PREFIX_I.
--pattern seq walks the objects block by block (object 0 first), rand picks
blocks uniformly. Volume I/O: --port of vlmcd, --name VOLUME --objects 1
--object-size VOLUME_SIZE.

--verify: writes carry a pattern derived from (object, offset), reads check it
and count mismatches as errors. Reads only find the pattern where it was
written: run with --prefill (writes every block first), or after a --verify
write run that covered every block (--pattern seq long enough) with the same
--prefix, --objects and --object-size.

Flags:
`

const volumeHelp = `Usage: xseg-bench volume --segment NAME --port N --name VOLUME [flags]

The object mode against one volume through vlmcd (--port of vlmcd): the
requests spread over the whole volume (its size from INFO, rounded down to
a multiple of --size). --object-size, --objects and --prefix are ignored.

Flags:
`

// volumeSize asks port dst (vlmcd) for the size of volume name.
func volumeSize(port *xseg.Port, dst int, name string) (uint64, error) {
	r, err := port.Get()
	if err != nil {
		return 0, err
	}
	defer port.Put(r)
	if err := r.Prepare(xseg.OpInfo, name, protocol.VolumeInfoLen); err != nil {
		return 0, err
	}
	if err := port.Submit(r, dst); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rep, ok := port.Receive(); ok {
			if err := rep.Err(); err != nil {
				return 0, fmt.Errorf("INFO %q: %w", name, err)
			}
			info, err := protocol.DecodeVolumeInfo(rep.Data())
			return info.Size, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("INFO %q: no reply in 30 s", name)
		}
		port.Wait(time.Second)
	}
}

// objectConfig is what the object mode measures.
type objectConfig struct {
	loadConfig
	op         string
	pattern    string
	objectSize cli.SizeFlag
	objects    int
	prefix     string
	name       string
	verify     bool
	prefill    bool
	fua        bool
	seed       uint64
}

// objectResult is the ipc mode's result plus what the object mode adds.
type objectResult struct {
	latency.Result
	Op           string `json:"op"`
	Pattern      string `json:"pattern"`
	ObjectSize   uint64 `json:"object_size"`
	Objects      int    `json:"objects"`
	Verify       bool   `json:"verify"`
	VerifyErrors uint64 `json:"verify_errors"`
}

// object runs the object mode, or with volume the volume mode: --name is
// then a volume, the only target, and its size the --object-size.
func object(args []string, volume bool) error {
	c := objectConfig{objectSize: cli.SizeFlag{Bytes: 4 << 20}}
	c.size.Bytes = 4 << 10
	mode := "object"
	if volume {
		mode = "volume"
	}
	fs := flag.NewFlagSet("xseg-bench "+mode, flag.ContinueOnError)
	c.define(fs)
	fs.StringVar(&c.op, "op", "read", "read or write")
	fs.StringVar(&c.pattern, "pattern", "rand", "seq or rand")
	fs.Var(&c.objectSize, "object-size", "bytes per object (K/M suffixes); a multiple of --size")
	fs.IntVar(&c.objects, "objects", 16, "how many objects the requests spread over")
	fs.StringVar(&c.prefix, "prefix", "xseg-bench", "object names are PREFIX_0, PREFIX_1, ...")
	fs.StringVar(&c.name, "name", "", "one target of this exact name instead (needs --objects 1): a volume, when --port is vlmcd's and --object-size the volume's size")
	fs.BoolVar(&c.verify, "verify", false, "write a pattern derived from (object, offset); check it on reads")
	fs.BoolVar(&c.prefill, "prefill", false, "write every block of every object (with the pattern) before measuring")
	fs.BoolVar(&c.fua, "fua", false, "send writes with FUA (durable before the reply)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random pattern")
	fs.Usage = func() {
		if volume {
			fmt.Fprint(fs.Output(), volumeHelp)
		} else {
			fmt.Fprint(fs.Output(), objectHelp)
		}
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if volume {
		if c.name == "" {
			return cli.Usagef("--name VOLUME: required")
		}
		c.objects = 1
	}
	s, port, err := c.join()
	if err != nil {
		return err
	}
	defer s.Leave()
	if volume {
		size, err := volumeSize(port, c.port, c.name)
		if err != nil {
			return err
		}
		if c.objectSize.Bytes = size - size%c.size.Bytes; c.objectSize.Bytes == 0 {
			return cli.Usagef("volume %q of %d bytes: smaller than --size", c.name, size)
		}
	}
	if err := c.check(); err != nil {
		return err
	}
	if c.prefill {
		if err := prefill(port, c); err != nil {
			return err
		}
	}
	res, err := runObject(port, c)
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(res)
	}
	fmt.Printf("%s %s: %s\n", c.pattern, c.op, res.Text())
	if c.verify {
		fmt.Printf("verify: %d mismatches\n", res.VerifyErrors)
	}
	return nil
}

func (c *objectConfig) check() error {
	if err := c.loadConfig.check(); err != nil {
		return err
	}
	switch {
	case c.op != "read" && c.op != "write":
		return cli.Usagef("--op %q: want read or write", c.op)
	case c.pattern != "seq" && c.pattern != "rand":
		return cli.Usagef("--pattern %q: want seq or rand", c.pattern)
	case c.size.Bytes == 0:
		return cli.Usagef("--size: must be positive")
	case c.objectSize.Bytes < c.size.Bytes || c.objectSize.Bytes%c.size.Bytes != 0:
		return cli.Usagef("--object-size %s: must be a multiple of --size %s", c.objectSize.String(), c.size.String())
	case c.objects < 1:
		return cli.Usagef("--objects %d: must be at least 1", c.objects)
	case c.name != "" && c.objects != 1:
		return cli.Usagef("--name %q: with --objects 1 only", c.name)
	case c.verify && c.size.Bytes%8 != 0:
		return cli.Usagef("--verify needs a --size that is a multiple of 8")
	}
	return nil
}

// blocks addresses the objects as a sequence of --size blocks, object 0
// first.
type blocks struct {
	// fixed is --name; else object i is prefix_i, its name made when a
	// request is prepared: a write run makes 50,000 objects a second,
	// and their names made up front were a third of the client's CPU.
	fixed, prefix string
	size          uint64
	perObject     uint64
	total         uint64
	verify        bool
	object, offs  []uint64 // per request slot: what it was sent for
}

func newBlocks(c objectConfig, slots uint32, blockSize uint64) *blocks {
	b := &blocks{fixed: c.name, prefix: c.prefix + "_", size: blockSize, perObject: c.objectSize.Bytes / blockSize,
		verify: c.verify, object: make([]uint64, slots), offs: make([]uint64, slots)}
	b.total = b.perObject * uint64(c.objects)
	return b
}

// objectName returns the name of object obj.
func (b *blocks) objectName(obj uint64) string {
	if b.fixed != "" {
		return b.fixed
	}
	return b.prefix + strconv.FormatUint(obj, 10)
}

// prepare makes r a request of op on block k.
func (b *blocks) prepare(r xseg.Request, op xseg.Op, flags xseg.Flags, k uint64) error {
	obj, off := k/b.perObject, k%b.perObject*b.size
	if err := r.Prepare(op, b.objectName(obj), b.size); err != nil {
		return err
	}
	r.SetOffset(off)
	r.SetSize(b.size)
	r.SetFlags(flags)
	b.object[r.Index()], b.offs[r.Index()] = obj, off
	if op == xseg.OpWrite && b.verify {
		fillPattern(r.Data(), obj, off)
	}
	return nil
}

// check compares a read reply with the pattern of its block.
func (b *blocks) check(r xseg.Request) error {
	obj, off := b.object[r.Index()], b.offs[r.Index()]
	if at, ok := checkPattern(r.Data(), obj, off); !ok {
		return fmt.Errorf("verify: %s at offset %d: mismatch at byte %d", b.objectName(obj), off, at)
	}
	return nil
}

// patternWord is the 8 bytes at byte offset off of object obj: distinct
// for every object and aligned offset, and the same whoever writes it.
func patternWord(obj, off uint64) uint64 {
	return (obj+1)*0x9e3779b97f4a7c15 ^ (off+1)*0xbf58476d1ce4e5b9
}

func fillPattern(p []byte, obj, off uint64) {
	for i := 0; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], patternWord(obj, off+uint64(i)))
	}
}

// checkPattern reports whether p holds the pattern; if not, the first byte
// offset in p that differs.
func checkPattern(p []byte, obj, off uint64) (int, bool) {
	for i := 0; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:]) != patternWord(obj, off+uint64(i)) {
			return i, false
		}
	}
	return 0, true
}

// runObject measures c against a blocker.
func runObject(port *xseg.Port, c objectConfig) (objectResult, error) {
	op, check := xseg.OpRead, false
	var flags xseg.Flags
	if c.op == "write" {
		op = xseg.OpWrite
		if c.fua {
			flags = xseg.FlagFUA
		}
	} else {
		check = c.verify
	}
	b := newBlocks(c, port.Segment().Geometry().Requests, c.size.Bytes)
	rng := rand.New(rand.NewPCG(c.seed, c.seed^0x5851f42d4c957f2d))
	var next uint64
	l := closedLoop{
		port: port, dst: c.port, iodepth: c.iodepth,
		meter:  latency.NewMeter(c.warmup, c.duration),
		sample: latency.NewSampler(c.sampleEvery),
		fill: func(r xseg.Request, _ bool) error {
			k := next % b.total
			next++
			if c.pattern == "rand" {
				k = rng.Uint64N(b.total)
			}
			return b.prepare(r, op, flags, k)
		},
	}
	var verifyErrors uint64
	if check {
		l.check = func(r xseg.Request) error {
			err := b.check(r)
			if err != nil {
				verifyErrors++
			}
			return err
		}
	}
	st, err := l.run()
	if err != nil {
		return objectResult{}, err
	}
	res := objectResult{
		Result:     l.meter.Result("object", c.iodepth, int(c.size.Bytes), c.sampleEvery),
		Op:         c.op,
		Pattern:    c.pattern,
		ObjectSize: c.objectSize.Bytes,
		Objects:    c.objects,
		Verify:     c.verify,
	}
	res.Errors, res.VerifyErrors = st.errors, verifyErrors
	if st.firstErr != nil && (res.Ops == 0 || verifyErrors > 0) {
		return res, fmt.Errorf("port %d: %d errors, the first: %w", c.port, st.errors, st.firstErr)
	}
	return res, nil
}

// prefill writes the pattern over every byte of every object, in requests
// of up to 1 MiB.
func prefill(port *xseg.Port, c objectConfig) error {
	chunk := c.size.Bytes
	if c.objectSize.Bytes%(1<<20) == 0 {
		chunk = max(chunk, 1<<20)
	}
	pc := c
	pc.verify = true
	b := newBlocks(pc, port.Segment().Geometry().Requests, chunk)
	var next uint64
	l := closedLoop{
		port: port, dst: c.port, iodepth: c.iodepth, total: b.total,
		meter:  latency.NewMeter(0, time.Hour),
		sample: latency.NewSampler(1 << 30),
		fill: func(r xseg.Request, _ bool) error {
			k := next
			next++
			return b.prepare(r, xseg.OpWrite, 0, k)
		},
	}
	st, err := l.run()
	if err == nil && st.firstErr != nil {
		err = fmt.Errorf("prefill: %d of %d writes failed, the first: %w", st.errors, b.total, st.firstErr)
	}
	return err
}
