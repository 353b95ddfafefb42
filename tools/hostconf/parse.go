package hostconf

import (
	_ "embed"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/archipelago-go/archipelago/xseg"
)

//go:embed shipped.conf
var shippedConf string

// section is one INI section: its keys (lowercased) in file order.
type section struct {
	name string
	keys []string
	vals map[string]string
	line map[string]int
}

// ini is a parsed file: sections by name, in file order.
type ini struct {
	order []string
	secs  map[string]*section
}

// parseINI reads the dialect Python's ConfigParser read: [section] lines,
// "key = value" or "key: value", comments on lines starting with # or ;,
// keys case-insensitive.
func parseINI(text string) (*ini, error) {
	f := &ini{secs: map[string]*section{}}
	var cur *section
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: %q: want [SECTION]", i+1, line)
			}
			name := strings.TrimSpace(line[1 : len(line)-1])
			if _, dup := f.secs[name]; dup {
				return nil, fmt.Errorf("line %d: section [%s] appears twice", i+1, name)
			}
			cur = &section{name: name, vals: map[string]string{}, line: map[string]int{}}
			f.secs[name] = cur
			f.order = append(f.order, name)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if c := strings.IndexByte(line, ':'); c >= 0 && (!ok || c < len(k)) {
			k, v, ok = line[:c], line[c+1:], true
		}
		if !ok {
			return nil, fmt.Errorf("line %d: %q: want key = value", i+1, line)
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: key %q before any [SECTION]", i+1, strings.TrimSpace(k))
		}
		k = lower(k)
		if _, dup := cur.vals[k]; !dup {
			cur.keys = append(cur.keys, k)
		}
		cur.vals[k] = strings.TrimSpace(v)
		cur.line[k] = i + 1
	}
	return f, nil
}

// Keys each section accepts. "used" ones shape the Host; the others are
// the original's, accepted so an operator's file works, and not used.
var (
	archipelagoKeys = []string{"user", "group", "blktap_enabled", "umask", "run_dir", "log_dir"}
	xsegKeys        = []string{"segment_ports", "segment_dynports", "segment_size", "vtool_start", "vtool_end",
		"segment_type", "segment_name", "segment_alignment", "segment_dir", "segment_requests"}
	peersKeys  = []string{"roles", "order"}
	commonKeys = []string{"type", "portno_start", "portno_end", "nr_ops", "log_level", "umask", "logfile", "threshold", "nr_threads", "cpus"}
	typeKeys   = map[string][]string{
		FileBlocker:  {"archip_dir", "fdcache", "direct", "lock_dir", "pithos_migrate", "unique_str", "prefix", "owner"},
		RadosBlocker: {"pool", "cephx_id", "owner"},
		Mapperd:      {"blockerb_port", "blockerm_port", "owner"},
		Vlmcd:        {"blocker_port", "mapper_port", "inline_io"},
		Nbdd:         {"socket", "listen", "vlmcd_port", "max_connections"},
		Poold:        {"logging_conf", "socket_path", "pidfile"},
	}
	// typeDefaults are the values a role not named as a shipped one
	// takes for keys it leaves out.
	typeDefaults = map[string]map[string]string{
		FileBlocker:  {"nr_ops": "64", "log_level": "0", "fdcache": "512"},
		RadosBlocker: {"nr_ops": "512", "log_level": "0"},
		Mapperd:      {"nr_ops": "512", "log_level": "0", "blockerb_port": "1000", "blockerm_port": "1002"},
		Vlmcd:        {"nr_ops": "512", "log_level": "0", "blocker_port": "1000", "mapper_port": "1001"},
		Nbdd:         {"nr_ops": "64", "log_level": "0"},
		Poold:        {},
	}
)

func checkKeys(s *section, allowed ...[]string) error {
	for _, k := range s.keys {
		found := false
		for _, list := range allowed {
			for _, a := range list {
				found = found || a == k
			}
		}
		if !found {
			return fmt.Errorf("line %d: [%s] unknown key %q", s.line[k], s.name, k)
		}
	}
	return nil
}

// merged returns the keys of base overlaid with those of over.
func merged(base, over map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

// Parse reads an archipelago.conf (see the package doc) into a Host and
// validates it.
func Parse(text string) (*Host, error) {
	shipped, err := parseINI(shippedConf)
	if err != nil {
		panic("shipped.conf: " + err.Error())
	}
	f, err := parseINI(text)
	if err != nil {
		return nil, err
	}
	sec := func(name string) *section {
		if s, ok := f.secs[name]; ok {
			return s
		}
		return &section{name: name, vals: map[string]string{}, line: map[string]int{}}
	}
	arch, xs, prs := sec("ARCHIPELAGO"), sec("XSEG"), sec("PEERS")
	if err := checkKeys(arch, archipelagoKeys); err != nil {
		return nil, err
	}
	if err := checkKeys(xs, xsegKeys); err != nil {
		return nil, err
	}
	if err := checkKeys(prs, peersKeys); err != nil {
		return nil, err
	}
	a := merged(map[string]string{"run_dir": "/var/run/archipelago", "log_dir": "/var/log/archipelago"}, arch.vals)
	x := merged(merged(shipped.secs["XSEG"].vals, map[string]string{"segment_name": "archipelago", "segment_dir": xseg.DefaultDir, "segment_requests": "4096"}), xs.vals)
	p := merged(shipped.secs["PEERS"].vals, prs.vals)

	var perr error
	num := func(where, key, v string) int {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil && perr == nil {
			perr = fmt.Errorf("[%s] %s = %q: want a number", where, key, v)
		}
		return n
	}
	ports := num("XSEG", "SEGMENT_PORTS", x["segment_ports"])
	dyn := num("XSEG", "SEGMENT_DYNPORTS", x["segment_dynports"])
	sizeMiB := num("XSEG", "SEGMENT_SIZE", x["segment_size"])
	reqs := num("XSEG", "SEGMENT_REQUESTS", x["segment_requests"])
	if perr != nil {
		return nil, perr
	}
	if dyn > ports || ports < 1 || sizeMiB < 1 || reqs < 1 {
		return nil, fmt.Errorf("[XSEG] want SEGMENT_PORTS >= SEGMENT_DYNPORTS, SEGMENT_SIZE >= 1 and SEGMENT_REQUESTS >= 1")
	}
	h := &Host{
		Segment: Segment{
			Name: x["segment_name"],
			Dir:  x["segment_dir"],
			Geometry: xseg.Geometry{Ports: uint32(ports), StaticPorts: uint32(ports - dyn),
				Requests: uint32(reqs), BufferBytes: uint64(sizeMiB) << 20},
		},
		RunDir: a["run_dir"],
		LogDir: a["log_dir"],
	}

	known := map[string]bool{"ARCHIPELAGO": true, "XSEG": true, "PEERS": true}
	for _, role := range strings.Fields(p["roles"]) {
		if known[role] {
			return nil, fmt.Errorf("[PEERS] ROLES: %q listed twice or a reserved name", role)
		}
		known[role] = true
		own, hasOwn := f.secs[role]
		base, isShipped := shipped.secs[role]
		if !hasOwn && !isShipped {
			return nil, fmt.Errorf("[PEERS] ROLES: role %q has no [%s] section", role, role)
		}
		if !hasOwn {
			own = sec(role)
		}
		typ := own.vals["type"]
		if typ == "" && isShipped {
			typ = base.vals["type"]
		}
		tk, ok := typeKeys[typ]
		if !ok {
			return nil, fmt.Errorf("[%s] type = %q: want file_blocker, rados_blocker, mapperd, vlmcd, nbdd or poold", role, typ)
		}
		if err := checkKeys(own, commonKeys, tk); err != nil {
			return nil, err
		}
		var v map[string]string
		if isShipped && base.vals["type"] == typ {
			v = merged(base.vals, own.vals)
		} else {
			v = merged(typeDefaults[typ], own.vals)
		}
		peer, err := makePeer(role, typ, v)
		if err != nil {
			return nil, err
		}
		h.Peers = append(h.Peers, peer)
	}
	for _, name := range f.order {
		if !known[name] {
			return nil, fmt.Errorf("[%s]: unknown section (not in [PEERS] ROLES)", name)
		}
	}
	h.fillFiles()
	h.linkInlineIO()
	if v, err := h.Vlmcd(); err == nil {
		for i := range h.Peers {
			if h.Peers[i].Type == Nbdd && h.Peers[i].VlmcdPort == 0 {
				h.Peers[i].VlmcdPort = v.Port()
			}
		}
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

var logLevels = []string{"error", "warning", "info", "debug"}

func makePeer(role, typ string, v map[string]string) (Peer, error) {
	var perr error
	num := func(key string, def int) int {
		s, ok := v[key]
		if !ok || s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil && perr == nil {
			perr = fmt.Errorf("[%s] %s = %q: want a number", role, key, s)
		}
		return n
	}
	p := Peer{Role: role, Type: typ, Owner: v["owner"]}
	p.PortStart = num("portno_start", -1)
	p.PortEnd = num("portno_end", p.PortStart)
	if p.PortStart < 0 && perr == nil && !p.Dynamic() {
		perr = fmt.Errorf("[%s] portno_start: required", role)
	}
	p.Inflight = num("nr_ops", 16)
	lvl := num("log_level", 0)
	if perr == nil && (lvl < 0 || lvl >= len(logLevels)) {
		perr = fmt.Errorf("[%s] log_level = %d: want 0 to 3", role, lvl)
	}
	if perr == nil {
		p.LogLevel = logLevels[lvl]
	}
	if c := v["cpus"]; c != "" {
		cpus, err := ParseCPUs(c)
		if err != nil && perr == nil {
			perr = fmt.Errorf("[%s] cpus = %q: %w", role, c, err)
		}
		p.CPUs = cpus
	}
	p.LogFile = v["logfile"]
	if p.LogFile != "" && !filepath.IsAbs(p.LogFile) {
		perr = fmt.Errorf("[%s] logfile = %q: want an absolute path", role, p.LogFile)
	}
	switch typ {
	case FileBlocker:
		p.DataDir = v["archip_dir"]
		p.LockDir = v["lock_dir"]
		p.FDCache = num("fdcache", 512)
		if d := lower(v["direct"]); d != "" {
			b, err := strconv.ParseBool(d)
			if err != nil && perr == nil {
				perr = fmt.Errorf("[%s] direct = %q: want True or False", role, v["direct"])
			}
			p.Direct = b
		}
		if p.DataDir == "" && perr == nil {
			perr = fmt.Errorf("[%s] archip_dir: required for a file_blocker", role)
		}
	case RadosBlocker:
		p.Pool = v["pool"]
		p.CephxID = v["cephx_id"]
		if p.Pool == "" && perr == nil {
			perr = fmt.Errorf("[%s] pool: required for a rados_blocker", role)
		}
	case Mapperd:
		p.DataPort = num("blockerb_port", 1000)
		p.MapPort = num("blockerm_port", 1002)
	case Vlmcd:
		p.BlockerPort = num("blocker_port", 1000)
		p.MapperPort = num("mapper_port", 1001)
		p.InlineIO = true
		if d := lower(v["inline_io"]); d != "" {
			b, err := strconv.ParseBool(d)
			if err != nil && perr == nil {
				perr = fmt.Errorf("[%s] inline_io = %q: want True or False", role, v["inline_io"])
			}
			p.InlineIO = b
		}
	case Nbdd:
		if _, ok := v["portno_start"]; ok && perr == nil {
			perr = fmt.Errorf("[%s] portno_start: nbdd binds a dynamic port of its own", role)
		}
		p.PortStart, p.PortEnd = -1, -1
		p.Socket = v["socket"]
		p.Listen = strings.Fields(v["listen"])
		p.VlmcdPort = num("vlmcd_port", 0)
		p.MaxConnections = num("max_connections", 0)
	}
	return p, perr
}

// maxCPU bounds the CPU numbers of a cpus list: the kernel's default
// CPU_SETSIZE.
const maxCPU = 1023

// ParseCPUs reads a CPU list as taskset and /proc/PID/status write it:
// numbers and ranges separated by commas ("0-3,8,10-11"), in any order.
// It returns the CPUs in ascending order, each once.
func ParseCPUs(s string) ([]int, error) {
	var set [maxCPU + 1]bool
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(item), "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return nil, fmt.Errorf("%q: want a CPU number or a range N-M", item)
		}
		if b > maxCPU {
			return nil, fmt.Errorf("CPU %d: the largest is %d", b, maxCPU)
		}
		for c := a; c <= b; c++ {
			set[c] = true
		}
	}
	var cpus []int
	for c, in := range set {
		if in {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
