// Package hostconf owns a host's configuration: its segment and the peers
// that serve on it, read from the original Archipelago's archipelago.conf
// (INI) so an operator's existing file works unchanged, or the embedded
// default host of DESIGN.md when there is no file.
//
// # The file
//
// Sections and keys are those of the original's conf/archipelago.conf:
//
//	[ARCHIPELAGO]  USER, GROUP, BLKTAP_ENABLED, UMASK (accepted, not used)
//	[XSEG]         SEGMENT_PORTS (2048), SEGMENT_DYNPORTS (1024),
//	               SEGMENT_SIZE in MiB (2048), SEGMENT_NAME (archipelago),
//	               VTOOL_START, VTOOL_END, SEGMENT_TYPE, SEGMENT_ALIGNMENT
//	               (accepted, not used)
//	[PEERS]        ROLES (blockerb blockerm mapperd vlmcd poold), ORDER (unused)
//	[<role>]       type = file_blocker | rados_blocker | mapperd | vlmcd | poold
//	               portno_start, portno_end, nr_ops, log_level (0-3), logfile,
//	               and per type: archip_dir, lock_dir, fdcache, direct
//	               (file_blocker); pool, cephx_id (rados_blocker);
//	               blockerb_port, blockerm_port (mapperd); blocker_port,
//	               mapper_port (vlmcd). umask, threshold, nr_threads,
//	               pithos_migrate, unique_str, prefix, logging_conf,
//	               socket_path, pidfile are accepted and not used.
//
// Keys are case-insensitive, as Python's ConfigParser made them. A key left
// out takes the value of the original's shipped config (for the shipped
// roles blockerb, blockerm, mapperd, vlmcd and poold, their section; for
// other role names, the type's values); a role listed in ROLES without a
// section takes the shipped section of that name. An unknown section or key
// is an error naming it.
//
// Keys we add (see testdata/example.conf):
//
//	[XSEG]         SEGMENT_DIR (/dev/shm), SEGMENT_REQUESTS (4096)
//	[ARCHIPELAGO]  RUN_DIR (/var/run/archipelago: pid files),
//	               LOG_DIR (/var/log/archipelago: <role>.log unless logfile)
//	[<role>]       owner (file_blocker, mapperd: the lock owner),
//	               cpus (a CPU list, 0-3,8: the CPUs the peer runs on)
//
// The segment's geometry follows: SEGMENT_PORTS ports, of which the first
// SEGMENT_PORTS-SEGMENT_DYNPORTS are static (peers bind them by number) and
// the rest dynamic (vlmc, NBD, QEMU); SEGMENT_SIZE MiB of data buffers.
//
// poold has no counterpart here (every client binds a dynamic port): a
// poold role is parsed and skipped by archipelago start.
package hostconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/archipelago-go/archipelago/xseg"
)

// DefaultPath is where archipelago and vlmc look for the host's config.
const DefaultPath = "/etc/archipelago/archipelago.conf"

// Peer types.
const (
	FileBlocker  = "file_blocker"
	RadosBlocker = "rados_blocker"
	Mapperd      = "mapperd"
	Vlmcd        = "vlmcd"
	Nbdd         = "nbdd"
	Poold        = "poold"
)

// Host is one host: a segment and the peers that serve on it.
type Host struct {
	// Source is the file read, or "default".
	Source  string  `json:"source"`
	Segment Segment `json:"segment"`
	// RunDir holds the peers' pid files.
	RunDir string `json:"run_dir"`
	// LogDir holds the peers' logs, <role>.log, unless a peer says where.
	LogDir string `json:"log_dir"`
	// Peers in start order (ROLES order; archipelago sorts by dependency).
	Peers []Peer `json:"peers"`
}

// Segment names the host's segment and its geometry.
type Segment struct {
	Name     string        `json:"name"`
	Dir      string        `json:"dir"`
	Geometry xseg.Geometry `json:"geometry"`
}

// Options returns the xseg options that reach this segment.
func (s Segment) Options() xseg.Options { return xseg.Options{Dir: s.Dir} }

// Peer is one peer process of the host.
type Peer struct {
	Role string `json:"role"`
	Type string `json:"type"`
	// PortStart..PortEnd (inclusive) are the static ports it serves.
	PortStart int `json:"port_start"`
	PortEnd   int `json:"port_end"`
	// Inflight is nr_ops: requests served at once per port.
	Inflight int    `json:"inflight"`
	LogLevel string `json:"log_level"`
	LogFile  string `json:"log_file"`
	PIDFile  string `json:"pid_file"`
	// CPUs (ours, key cpus) are the only CPUs archipelago start lets the
	// peer run on; none: every CPU.
	CPUs []int `json:"cpus,omitempty"`

	// file_blocker
	DataDir string `json:"data_dir,omitempty"`
	LockDir string `json:"lock_dir,omitempty"`
	FDCache int    `json:"fdcache,omitempty"`
	Direct  bool   `json:"direct,omitempty"`
	// file_blocker, mapperd: lock owner (our addition; empty = the peer's default)
	Owner string `json:"owner,omitempty"`
	// rados_blocker
	Pool    string `json:"pool,omitempty"`
	CephxID string `json:"cephx_id,omitempty"`
	// mapperd: data and map blocker ports
	DataPort int `json:"data_port,omitempty"`
	MapPort  int `json:"map_port,omitempty"`
	// vlmcd: data blocker and mapper ports
	BlockerPort int `json:"blocker_port,omitempty"`
	MapperPort  int `json:"mapper_port,omitempty"`
	// vlmcd (ours): do the data blocker's object I/O itself when that is
	// a file_blocker (key inline_io, default true); DataDir, Direct and
	// FDCache are then the blocker's.
	InlineIO bool `json:"inline_io,omitempty"`
	// nbdd (ours): its unix socket (default <run_dir>/nbd.sock), TCP
	// addresses, the vlmcd port it sends to (default the host's vlmcd)
	Socket         string   `json:"socket,omitempty"`
	Exports        string   `json:"exports,omitempty"` // <run_dir>/exports: vlmc map's table
	Listen         []string `json:"listen,omitempty"`
	VlmcdPort      int      `json:"vlmcd_port,omitempty"`
	MaxConnections int      `json:"max_connections,omitempty"`
}

// Dynamic reports whether the peer binds a dynamic port of its own
// (nbdd) rather than static ports.
func (p Peer) Dynamic() bool { return p.Type == Nbdd }

// Port is the port clients send to: the first one it serves.
func (p Peer) Port() int { return p.PortStart }

// PortArg is the --port flag value.
func (p Peer) PortArg() string {
	if p.Dynamic() {
		return "dynamic"
	}
	if p.PortEnd > p.PortStart {
		return fmt.Sprintf("%d-%d", p.PortStart, p.PortEnd)
	}
	return fmt.Sprint(p.PortStart)
}

// InflightPerPort is nr_ops spread over the peer's ports: the original's
// nr_ops bounded a peer's requests in all, ours --inflight bounds each port's
// (vlmcd's 500 ports of the shipped conf would otherwise run 256,000).
func (p Peer) InflightPerPort() int {
	return max(1, p.Inflight/(p.PortEnd-p.PortStart+1))
}

// Binary is the name of the peer's binary; empty for poold (not run).
func (p Peer) Binary() string {
	switch p.Type {
	case FileBlocker:
		return "filed"
	case RadosBlocker:
		return "radosd"
	case Mapperd:
		return "mapperd"
	case Vlmcd:
		return "vlmcd"
	case Nbdd:
		return "nbdd"
	}
	return ""
}

// Vlmcd returns the host's vlmcd peer, where every volume op is sent.
func (h *Host) Vlmcd() (Peer, error) { return h.first(Vlmcd, "") }

// first returns the first peer of type typ; the error says what is
// missing, then hint.
func (h *Host) first(typ, hint string) (Peer, error) {
	for _, p := range h.Peers {
		if p.Type == typ {
			return p, nil
		}
	}
	return Peer{}, fmt.Errorf("%s: no peer of type %s%s", h.Source, typ, hint)
}

// Nbdd returns the host's nbdd peer, whose socket QEMU reaches.
func (h *Host) Nbdd() (Peer, error) {
	return h.first(Nbdd, " (add a role with type = nbdd)")
}

// Default ports of the embedded default host, inside xseg.DefaultGeometry's
// 64 static ports: the blocker (data and maps) on 1, mapperd on 2, vlmcd on
// 3. Port 0 is left to `make run`'s null peer and tests.
const (
	DefaultBlockerPort = 1
	DefaultMapperPort  = 2
	DefaultVlmcdPort   = 3
)

// Default returns the embedded default host of DESIGN.md: segment
// "archipelago" in /dev/shm with xseg.DefaultGeometry, one filed as both
// data and map blocker over /var/lib/archipelago (root) or
// $XDG_DATA_HOME/archipelago (~/.local/share/archipelago), mapperd and
// vlmcd, and nbdd on <run dir>/nbd.sock. Pid files and logs go to /run/archipelago (root) or
// $XDG_RUNTIME_DIR/archipelago (~/.cache/archipelago/run).
func Default() *Host {
	dataDir, runDir := "/var/lib/archipelago", "/run/archipelago"
	if os.Geteuid() != 0 {
		home, _ := os.UserHomeDir()
		dataDir = filepath.Join(home, ".local", "share", "archipelago")
		if x := os.Getenv("XDG_DATA_HOME"); x != "" {
			dataDir = filepath.Join(x, "archipelago")
		}
		runDir = filepath.Join(home, ".cache", "archipelago", "run")
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
			runDir = filepath.Join(x, "archipelago")
		}
	}
	h := &Host{
		Source:  "default",
		Segment: Segment{Name: "archipelago", Dir: xseg.DefaultDir, Geometry: xseg.DefaultGeometry},
		RunDir:  runDir,
		LogDir:  runDir,
		Peers: []Peer{
			{Role: "filed", Type: FileBlocker, PortStart: DefaultBlockerPort, PortEnd: DefaultBlockerPort, Inflight: 64, LogLevel: "info", DataDir: dataDir, FDCache: 256},
			{Role: "mapperd", Type: Mapperd, PortStart: DefaultMapperPort, PortEnd: DefaultMapperPort, Inflight: 512, LogLevel: "info", DataPort: DefaultBlockerPort, MapPort: DefaultBlockerPort},
			{Role: "vlmcd", Type: Vlmcd, PortStart: DefaultVlmcdPort, PortEnd: DefaultVlmcdPort, Inflight: 512, LogLevel: "info", BlockerPort: DefaultBlockerPort, MapperPort: DefaultMapperPort, InlineIO: true},
			{Role: "nbdd", Type: Nbdd, PortStart: -1, PortEnd: -1, Inflight: 64, LogLevel: "info", VlmcdPort: DefaultVlmcdPort},
		},
	}
	h.fillFiles()
	h.linkInlineIO()
	return h
}

// linkInlineIO gives each vlmcd with InlineIO the directory (and O_DIRECT
// and fd cache settings) of its data blocker, if that is a file_blocker.
func (h *Host) linkInlineIO() {
	for i := range h.Peers {
		v := &h.Peers[i]
		if v.Type != Vlmcd || !v.InlineIO {
			continue
		}
		v.DataDir = ""
		for _, b := range h.Peers {
			if b.Type == FileBlocker && b.PortStart <= v.BlockerPort && v.BlockerPort <= b.PortEnd {
				v.DataDir, v.Direct, v.FDCache = b.DataDir, b.Direct, b.FDCache
			}
		}
	}
}

func (h *Host) fillFiles() {
	for i := range h.Peers {
		p := &h.Peers[i]
		if p.LogFile == "" {
			p.LogFile = filepath.Join(h.LogDir, p.Role+".log")
		}
		if p.PIDFile == "" {
			p.PIDFile = filepath.Join(h.RunDir, p.Role+".pid")
		}
		if p.Type == Nbdd && p.Socket == "" {
			p.Socket = filepath.Join(h.RunDir, "nbd.sock")
		}
		if p.Type == Nbdd {
			p.Exports = filepath.Join(h.RunDir, "exports")
		}
	}
}

// Load reads the host's config from path. An empty path means DefaultPath
// if it exists, else Default().
func Load(path string) (*Host, error) {
	if path == "" {
		if _, err := os.Stat(DefaultPath); err != nil {
			return Default(), nil
		}
		path = DefaultPath
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	h, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h.Source = path
	return h, nil
}

// Validate checks that the peers' ports are static ports of the segment,
// that no two peers share one, and that the ports peers reach are served.
func (h *Host) Validate() error {
	g := h.Segment.Geometry
	if g.StaticPorts > g.Ports {
		return fmt.Errorf("[XSEG] SEGMENT_DYNPORTS: more than SEGMENT_PORTS")
	}
	owner := map[int]string{}
	byType := map[int]string{}
	for _, p := range h.Peers {
		if p.Type == Poold || p.Dynamic() {
			continue
		}
		if p.PortStart < 0 || p.PortEnd < p.PortStart {
			return fmt.Errorf("[%s] portno_start/portno_end: bad range %d-%d", p.Role, p.PortStart, p.PortEnd)
		}
		if p.PortEnd >= int(g.StaticPorts) {
			return fmt.Errorf("[%s] ports %s: the segment has static ports 0-%d (SEGMENT_PORTS - SEGMENT_DYNPORTS)", p.Role, p.PortArg(), int(g.StaticPorts)-1)
		}
		for port := p.PortStart; port <= p.PortEnd; port++ {
			if o, ok := owner[port]; ok {
				return fmt.Errorf("[%s] port %d: also used by [%s]", p.Role, port, o)
			}
			owner[port] = p.Role
			byType[port] = p.Type
		}
	}
	isBlocker := func(port int) bool { return byType[port] == FileBlocker || byType[port] == RadosBlocker }
	for _, p := range h.Peers {
		switch p.Type {
		case Mapperd:
			if !isBlocker(p.DataPort) {
				return fmt.Errorf("[%s] blockerb_port %d: no blocker serves it", p.Role, p.DataPort)
			}
			if !isBlocker(p.MapPort) {
				return fmt.Errorf("[%s] blockerm_port %d: no blocker serves it", p.Role, p.MapPort)
			}
		case Vlmcd:
			if !isBlocker(p.BlockerPort) {
				return fmt.Errorf("[%s] blocker_port %d: no blocker serves it", p.Role, p.BlockerPort)
			}
			if byType[p.MapperPort] != Mapperd {
				return fmt.Errorf("[%s] mapper_port %d: no mapperd serves it", p.Role, p.MapperPort)
			}
		case Nbdd:
			if byType[p.VlmcdPort] != Vlmcd {
				return fmt.Errorf("[%s] vlmcd_port %d: no vlmcd serves it", p.Role, p.VlmcdPort)
			}
		}
	}
	return nil
}

// StartOrder returns the peers to run, in dependency order: blockers,
// mapperd, vlmcd, nbdd (ROLES order within each); poold is left out.
func (h *Host) StartOrder() []Peer {
	var out []Peer
	for _, want := range []string{FileBlocker, RadosBlocker, Mapperd, Vlmcd, Nbdd} {
		for _, p := range h.Peers {
			if p.Type == want {
				out = append(out, p)
			}
		}
	}
	return out
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Args returns the command line (without the binary) that runs peer p of
// host h.
func (h *Host) Args(p Peer) []string {
	a := []string{"--segment", h.Segment.Name, "--segment-dir", h.Segment.Dir}
	if !p.Dynamic() {
		a = append(a, "--port", p.PortArg(), "--inflight", fmt.Sprint(p.InflightPerPort()))
	}
	a = append(a, "--log-level", p.LogLevel, "--log-file", p.LogFile, "--pid-file", p.PIDFile)
	switch p.Type {
	case FileBlocker:
		a = append(a, "--data-dir", p.DataDir)
		if p.FDCache > 0 {
			a = append(a, "--fdcache", fmt.Sprint(p.FDCache))
		}
		if p.Direct {
			a = append(a, "--directio")
		}
		if p.LockDir != "" {
			a = append(a, "--lock-dir", p.LockDir)
		}
	case RadosBlocker:
		a = append(a, "--pool", p.Pool)
		if p.CephxID != "" {
			a = append(a, "--cephx-id", p.CephxID)
		}
	case Mapperd:
		a = append(a, "--data-port", fmt.Sprint(p.DataPort), "--map-port", fmt.Sprint(p.MapPort))
	case Vlmcd:
		a = append(a, "--blocker-port", fmt.Sprint(p.BlockerPort), "--mapper-port", fmt.Sprint(p.MapperPort))
		if p.DataDir != "" {
			a = append(a, "--data-dir", p.DataDir)
			if p.FDCache > 0 {
				a = append(a, "--fdcache", fmt.Sprint(p.FDCache))
			}
			if p.Direct {
				a = append(a, "--directio")
			}
		}
	case Nbdd:
		a = append(a, "--vlmcd-port", fmt.Sprint(p.VlmcdPort), "--socket", p.Socket, "--exports", p.Exports, "--max-inflight", fmt.Sprint(p.Inflight))
		for _, l := range p.Listen {
			a = append(a, "--listen", l)
		}
		if p.MaxConnections > 0 {
			a = append(a, "--max-connections", fmt.Sprint(p.MaxConnections))
		}
	}
	if p.Owner != "" && (p.Type == FileBlocker || p.Type == RadosBlocker || p.Type == Mapperd) {
		a = append(a, "--owner", p.Owner)
	}
	return a
}
