// Package null owns the null peer: it answers every request at once, so
// benchmarks and tests measure XSEG itself. READ replies carry the request
// offset in their first 8 bytes, so a client can match them.
package null

import (
	"encoding/binary"

	"github.com/archipelago-go/archipelago/xseg"
)

// Serve answers requests on p until p.Interrupt is called, then answers
// what is already queued and returns.
func Serve(p *xseg.Port) {
	for {
		p.Wait(0)
		served := 0
		for {
			r, ok := p.Accept()
			if !ok {
				break
			}
			if r.Op() == xseg.OpRead {
				if d := r.Data(); len(d) >= 8 {
					binary.LittleEndian.PutUint64(d, r.Offset())
				}
			}
			r.SetServiced(r.Size())
			p.Respond(r, nil)
			served++
		}
		if served == 0 && p.Interrupted() {
			return
		}
	}
}
