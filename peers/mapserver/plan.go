package mapserver

import (
	"fmt"

	"github.com/archipelago-go/archipelago/peers/mapper"
)

// runPlan runs a mapper plan phase by phase: the actions of a phase in
// parallel, the next phase only once every action of this one is durable.
// An error stops it where it is; the plan's order keeps storage consistent
// (see mapper.Plan), and the operation is not acknowledged.
func (s *storage) runPlan(p mapper.Plan) error {
	for i, ph := range p.Phases {
		if err := s.runPhase(ph); err != nil {
			return fmt.Errorf("phase %d of %d (%s): %w", i+1, len(p.Phases), ph.Why, err)
		}
	}
	return nil
}

// runPhase runs the actions of one phase and makes them durable. Copies
// (COPY is durable when the blocker replies) and creations are durable
// one by one; a few writes go with FlagFUA, many (a whole map) plain with
// one FLUSH per blocker after them: cheaper than a sync per chunk.
func (s *storage) runPhase(ph mapper.Phase) error {
	var writes [2]int
	for _, a := range ph.Actions {
		if a.Op == mapper.OpWrite {
			writes[a.Store]++
		}
	}
	batched := [2]bool{writes[0] > fuaWrites, writes[1] > fuaWrites}
	err := parallel(len(ph.Actions), actionParallel, func(i int) error {
		a := ph.Actions[i]
		if err := s.runAction(a, !batched[a.Store]); err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	flushed := map[int]bool{}
	for st, b := range batched {
		port := s.port(mapper.Store(st))
		if b && !flushed[port] {
			if err := s.flush(port); err != nil {
				return err
			}
			flushed[port] = true
		}
	}
	return nil
}

func (s *storage) runAction(a mapper.Action, fua bool) error {
	port := s.port(a.Store)
	switch a.Op {
	case mapper.OpWrite:
		return s.write(port, a.Object, a.Offset, a.Data, fua)
	case mapper.OpCopy:
		return s.copyObject(port, a.Object, a.Source, a.Size)
	case mapper.OpCreate:
		return s.create(port, a.Object, a.Size)
	case mapper.OpDelete:
		return s.remove(port, a.Object)
	}
	return fmt.Errorf("unknown plan action %v", a.Op)
}
