// Package mapserver owns the mapperd peer: the peers.Handler that serves
// volume operations on the port of mapperd, and its I/O to two blockers,
// the map blocker (map headers, map blocks, volume locks) and the data
// blocker (the volumes' objects; it may be the same port). The decisions
// (formats, what each operation does to a map, in which order storage is
// written) are the pure core's, peers/mapper; this package loads maps,
// runs the core's Plans phase by phase through the blockers, caches maps
// and serializes the operations on each volume. peers/mapperd is its
// binary (Main).
//
// # Requests
//
// The target of every request is a volume (or snapshot) name, LIST's a
// prefix of one ("" for all): at most mapper.MaxVolumeNameLen bytes, no
// '/' or NUL; names of new maps must also pass mapper.ValidateVolumeName
// (printable ASCII, not "_lock"/"_hash" or "_<16 hex>" at the end, not 64
// hex digits). Payloads are those of peers/protocol, the original XSEG
// structs (LIST's are ours). Flags: FlagAssumeV0 on any op
// reads a map without a signature as a Pithos (v0) hashmap; FlagForce as
// said below. Unlisted fields are ignored. On success serviced is the
// length of the reply payload, 0 if none.
//
//	op        target    offset    size        data in                     reply data
//	CLONE     new vol   -         block size  protocol.Clone (272 B):     -
//	                                (0: 4 MiB)  Parent "" = empty volume of
//	                                            Size bytes; else clone of the
//	                                            snapshot Parent, Size 0 = its
//	                                            size (request size 0 or the
//	                                            parent's block size)
//	SNAPSHOT  volume    -         -           name payload (260 B):       -
//	                                            the snapshot's name
//	DELETE    volume    -         -           -                           -
//	RENAME    volume    -         -           name payload: new name      -
//	TRUNCATE  volume    new size  -           -                           -
//	                                            (shrinking needs FlagForce)
//	DISCARD   volume    offset    length      -                           -
//	                                            (whole blocks become zero blocks)
//	INFO      volume    -         -           buffer >= 8 B (24 B)        protocol.EncodeVolumeInfo: size
//	                                                                        (block size at 16 B, flags at 24 B)
//	OPEN      volume    -         -           -                           -
//	CLOSE     volume    -         -           -                           -
//	MAPR      volume    offset    length      buffer >= MapLen(n)         protocol.EncodeMap: n segments
//	MAPW      volume    offset    length      buffer >= MapLen(n)         protocol.EncodeMap: n segments
//	HASH      snapshot  -         -           buffer >= 260 B             name payload: the image's name
//	UPDATE    volume    -         -           -                           -
//	LIST      prefix    -         -           name payload: the volume    protocol.EncodeVolumeList: the next
//	                                            to list after ("" from      page of the live volumes whose
//	                                            the first); buffer >= 260 B names start with prefix
//	PING      any       -         -           -                           -
//
// n is the number of blocks [offset, offset+length) touches: one segment
// per block, in order, {object, offset in it, size, flags}. Flags:
// SegmentZero, a never-written block (object is mapper.ZeroObject; read
// zeros, do no I/O; never in a MAPW reply); SegmentReadOnly, a block shared
// with a snapshot (reads only; never in a MAPW reply). A buffer too small
// for the reply fails with ENOBUFS and serviced = the bytes needed, so a
// client that does not know the block size sends MapLen(length/4 MiB + 2)
// and retries once. length 0 maps to no segment.
//
// MAPW copies up the blocks shared with a snapshot (and creates those never
// written) before it replies: every segment names an object of this volume
// alone, which the client then writes. The copy-up is durable (object,
// then map entry) before the reply: a write acknowledged after it is in the
// volume for good.
//
// # Locks and caching
//
// One host writes a volume at a time. Its lock is the map blocker's lock
// of the volume name (the blocker keeps it as "<volume>_lock"), taken as
// the map blocker's lock owner ("<hostname>_<port>" unless its --owner):
// the host, since it survives restarts of the peers.
//
//   - OPEN takes the lock (a try: FlagNoSync is implied) and caches the
//     map; again on an open volume it succeeds. With FlagForce it first
//     breaks the lock whoever holds it: only for a host known dead. A
//     snapshot (read-only map) is opened, cached, on any number of hosts
//     without a lock.
//   - CLOSE waits for the operations running on the volume, releases the
//     lock and drops the map. It also releases a lock this host holds
//     without having the volume open (mapperd restarted); a free lock is
//     fine; another host's lock is EPERM (FlagForce breaks it).
//   - MAPW opens implicitly (same try-lock); the volume stays open until
//     CLOSE. MAPR of a writable volume opens it if its lock is free, else
//     is served from the map loaded for that request alone (slow; as the
//     original did). vlmcd therefore may send MAPR/MAPW at once, but
//     should OPEN first to learn about a lock early, and CLOSE when done.
//   - SNAPSHOT, DELETE, RENAME, TRUNCATE and UPDATE of a volume not open
//     here take its lock for the operation alone; CLONE, SNAPSHOT,
//     RENAME and HASH take the lock of the name they make, so that two
//     hosts cannot make it at once. RENAME and DELETE leave the volume
//     closed.
//
// A lock held elsewhere fails the request with EAGAIN. If the request's
// data buffer holds a name payload (260 B), it receives the holder's owner
// string (targetlen 0 when unknown) and serviced = 260. Blockers do not
// say who holds a lock; the holder is read from filed's lock file
// "<volume>_lock" through READ (see storage.lockHolder): unknown on radosd
// or with filed --lock-dir.
//
// On SIGTERM the peer answers what it accepted and releases the locks of
// open volumes (unless Options.KeepLocks).
//
// Hazard: a host whose lock another host broke with FlagForce does not
// notice (the blockers have no fencing); it keeps serving its cached map.
// Force only the lock of a host known dead, as the original required.
//
// # Serialization and crash consistency
//
// Operations that change a volume's map run one at a time per volume
// (volume.ops); MAPW copy-ups of different blocks run in parallel, of one
// block one at a time; a SNAPSHOT waits for running copy-ups and holds new
// ones. MAPR on a cached map, and MAPW of written blocks, do no blocker
// I/O. Plans run phase by phase, each action durable (FUA, or one FLUSH per
// blocker after a phase of many writes) before the next phase; a request
// is answered only once its plan is done. Killed anywhere, mapperd leaves
// volumes that load and hold every acknowledged write; a request cut short
// is finished by sending it again (a RENAME finds its own half-written
// map and completes it).
//
// # Listing
//
// LIST lists the volumes (snapshots included, marked read-only in their
// info) as the original's vlmc list did by reading the map storage: it
// asks the map blocker for its object names (blocker LIST, pages sized by
// the blocker's hint), keeps those that may be map headers by their names
// (mapper.Candidates: not map blocks, copy-ups, side objects or 64-hex
// names), reads their headers a batch at a time in name order, and
// replies the live v2 and v1 maps, maps marked deleted left out, until
// the client's buffer is full; the client asks again after the last name
// for the next page. A map of Archipelago ≤ 0.3 stored as "archip_X" is
// listed as X, as lookups find it. Images named by their content (HASH's,
// and Pithos hashmaps) are not listed.
// A listing takes no lock and is no snapshot: volumes made or removed
// meanwhile may be in it or not. Each page lists the map blocker again
// (where maps and data share a blocker, every object of the host), so
// clients should offer large buffers.
//
// Not served: CREATE (a map from an explicit object list) and v0 size
// hints: EOPNOTSUPP.
//
// Errnos are listed at Errno.
package mapserver
