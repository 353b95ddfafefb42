package xseg

import "time"

// PortReport is what Report says of one port.
type PortReport struct {
	Port       int    `json:"port"`
	Kind       string `json:"kind"`  // static or dynamic
	State      string `json:"state"` // free, bound, recovering
	OwnerPID   uint32 `json:"owner_pid,omitempty"`
	Alive      bool   `json:"alive"`
	Generation uint32 `json:"generation"`
	Sleeping   bool   `json:"sleeping"`
	Queued     int    `json:"queued"`  // requests waiting in its request ring
	Replies    int    `json:"replies"` // replies waiting in its reply ring
	Submitted  uint64 `json:"submitted"`
	Served     uint64 `json:"served"`
	Failed     uint64 `json:"failed"`
	InFlight   int64  `json:"in_flight"` // submitted, neither served nor failed
	Received   uint64 `json:"replies_received"`
	Wakeups    uint64 `json:"wakeups"`
}

// Report is a snapshot of a segment, read without stopping anything.
type Report struct {
	Name         string         `json:"name"`
	Version      int            `json:"layout_version"`
	Geometry     Geometry       `json:"geometry"`
	SizeBytes    uint64         `json:"size_bytes"`
	Created      time.Time      `json:"created"`
	FreeRequests int            `json:"free_requests"`
	SlotStates   map[string]int `json:"slot_states"`
	BufferFree   uint64         `json:"buffer_free_bytes"`
	Ports        []PortReport   `json:"ports"`
}

// Report describes the segment; with all it lists every port, else only
// ports that are bound or have ever counted a request.
func (s *Segment) Report(all bool) Report {
	g := s.hdr.Geometry
	rep := Report{
		Name: s.name, Version: LayoutVersion, Geometry: g, SizeBytes: s.hdr.Layout.size,
		Created: s.Created(), FreeRequests: s.free.Len(), SlotStates: map[string]int{},
		BufferFree: s.pool.free(), Ports: []PortReport{},
	}
	for i := uint32(0); i < g.Requests; i++ {
		rep.SlotStates[slotStateNames[min(s.slot(i).state.Load(), slotReplied)]]++
	}
	for n := uint32(0); n < g.Ports; n++ {
		e := s.port(n)
		o := e.owner.Load()
		pr := PortReport{
			Port: int(n), Kind: "static", State: [...]string{"free", "bound", "recovering"}[min(e.state.Load(), portRecovering)],
			OwnerPID: uint32(o), Generation: uint32(o >> 32), Sleeping: e.sleeping.Load() == 1,
			Submitted: e.submitted.Load(), Served: e.served.Load(), Failed: e.failed.Load(),
			Received: e.replies.Load(), Wakeups: e.wakeups.Load(),
		}
		if n >= g.StaticPorts {
			pr.Kind = "dynamic"
		}
		pr.InFlight = int64(pr.Submitted - pr.Served - pr.Failed)
		if pr.OwnerPID != 0 {
			pr.Alive = alive(pr.OwnerPID, e.start.Load())
		}
		if e.ready.Load() == 1 {
			if r := s.portRings(n); r != nil {
				pr.Queued, pr.Replies = r.requests.Len(), r.replies.Len()
			}
		}
		if all || pr.OwnerPID != 0 || pr.Submitted != 0 || pr.Received != 0 {
			rep.Ports = append(rep.Ports, pr)
		}
	}
	return rep
}
