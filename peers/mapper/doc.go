// Package mapper is the pure core of mapperd: the volume maps of
// Archipelago, their on-storage formats, and what every map operation does
// to them. It does no I/O. The mapperd peer reads bytes from the blockers
// and hands them to the decoders here; it runs the Plans that operations
// return, phase by phase, and serves MAPR/MAPW from MapRead and MapWrite.
//
// # Maps
//
// A volume is a sequence of blocks of BlockSize bytes (4 MiB unless chosen
// at creation); its Map holds one Entry per block: the object that stores
// the block and flags (writable, created by Archipelago, zero block,
// deleted). A never-written block names the zero block (ZeroObject) and
// reads as zeros with no I/O. Maps are immutable values that share their
// entries: a snapshot or a clone of a 1 TiB volume copies a few hundred
// pointers, whatever was written (BenchmarkSnapshot, BenchmarkClone).
//
// # Formats
//
// Maps are read and written in the v2 format of Archipelago 0.4 (a
// big-endian header object "<volume>" and map blocks "<volume>_<16 hex>" of
// 128-byte entries), and read in the v1 format of Archipelago ≤ 0.3 and the
// v0 format of Pithos hashmaps (how image files are stored); Detect tells
// them apart as the original did, Upgrade rewrites an old map as v2. Object
// names are the original's: copy-ups "<volume>_<16 hex epoch>_<16 hex
// index>", Pithos blocks and hashed images the 64 hex digits of a SHA-256.
// A data directory of the original is served unchanged. The layouts and the
// choices where the original was ambiguous are in format.go and legacy.go.
//
// # Epochs
//
// Every map has an epoch that only grows: create and clone start from the
// deleted predecessor's (a removed map keeps its header for that reason),
// snapshot and shrinking bump it. Copy-up names carry it, so an object name
// is never produced twice and a snapshot's objects are never overwritten.
//
// # Crash consistency
//
// An operation is acknowledged only when its Plan is done. Plans order
// their writes so that killing the peer anywhere leaves maps that load and
// serve every acknowledged write: a map entry is written only after the
// object it names was written (copy-up), a new map's header only after its
// entries, a snapshot only after its source's entries became read-only.
// See Plan.
package mapper
