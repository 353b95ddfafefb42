// Command vlmc manages the volumes of a host: it sends each volume op to
// the host's vlmcd (which forwards what it does not serve itself to
// mapperd) over a dynamic port of the host's segment.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/tools/hostconf"
)

const usage = `Usage: vlmc [--config FILE] COMMAND ARGS... [--json]

Commands:
  create NAME --size S [--from SNAPSHOT]   a thin volume of S bytes, or a clone
                                           of SNAPSHOT (its size unless --size)
  remove NAME (rm)                         remove a volume or snapshot
  info NAME                                size and block size
  list [PREFIX] (ls)                       the volumes and snapshots (whose names
                                           start with PREFIX), sorted: name, size,
                                           block size, volume or snapshot; --json
                                           prints an array
  resize NAME --size S [--force]           grow; shrinking needs --force
  snapshot VOLUME SNAPNAME                 a read-only snapshot, instant
  clone SNAPSHOT NAME [--size S]           a writable volume from a snapshot
  rename NAME NEWNAME
  open NAME [--force]                      take the volume's lock on this host;
                                           --force breaks a dead host's lock
  close NAME [--force]                     release it
  lock NAME                                take the volume's lock for this host, as
                                           open does; another host's lock is an
                                           error naming that host
  unlock NAME [--force]                    release this host's lock, as close does;
                                           --force breaks another (dead) host's
                                           lock and leaves the volume unlocked
  hash SNAPSHOT                            content-address the snapshot's blocks
  import NAME FILE|-                       write a raw image into the volume, in
                                           4 MiB chunks, skipping all-zero ones;
                                           a missing volume is created with the
                                           file's size
  export NAME FILE|-                       write the volume, exactly its size in
                                           bytes (a file gets holes for zeros)
  map VOLUME                               export the volume through the host's
                                           nbdd; prints its NBD URI alone on the
                                           first line, then a QEMU -drive argument
  unmap VOLUME                             stop exporting it (open connections
                                           stay until their clients close them)
  showmapped                               the exported volumes and their URIs

Sizes take K, M, G, T suffixes (powers of 1024). The host is the one the
config describes: /etc/archipelago/archipelago.conf if it exists, else the
embedded default host (see archipelago --help).

Flags:
`

// options are the flags, shared by every command.
type options struct {
	config  string
	json    bool
	size    cli.SizeFlag
	from    string
	force   bool
	timeout time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("vlmc", flag.ContinueOnError)
	fs.StringVar(&o.config, "config", "", "host config `FILE` (default "+hostconf.DefaultPath+" if it exists, else the embedded default)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.Var(&o.size, "size", "volume size `S` (create, clone, resize), e.g. 10G")
	fs.StringVar(&o.from, "from", "", "create: clone this `SNAPSHOT`")
	fs.BoolVar(&o.force, "force", false, "resize: allow shrinking; open/close/unlock: break another (dead) host's lock")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "longest wait for one request's reply")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	args, err := cli.Parse(fs, os.Args[1:])
	if err != nil {
		cli.Fatal("vlmc", err)
	}
	if len(args) == 0 {
		fs.Usage()
		cli.Fatal("vlmc", cli.Usagef("want a command"))
	}
	sizeSet := false
	fs.Visit(func(f *flag.Flag) { sizeSet = sizeSet || f.Name == "size" })
	if err := run(&o, sizeSet, args); err != nil {
		cli.Fatal("vlmc", err)
	}
}

// nargs checks a command's positional argument count.
func nargs(args []string, want int, form string) error {
	if len(args) != want {
		return cli.Usagef("usage: vlmc %s", form)
	}
	return nil
}

func run(o *options, sizeSet bool, args []string) error {
	cmd, args := args[0], args[1:]
	forms := map[string]string{
		"create": "create NAME --size S [--from SNAPSHOT]", "remove": "remove NAME", "rm": "rm NAME",
		"info": "info NAME", "resize": "resize NAME --size S [--force]", "snapshot": "snapshot VOLUME SNAPNAME",
		"clone": "clone SNAPSHOT NAME [--size S]", "rename": "rename NAME NEWNAME", "open": "open NAME [--force]",
		"close": "close NAME [--force]", "hash": "hash SNAPSHOT", "import": "import NAME FILE|-", "export": "export NAME FILE|-",
		"lock": "lock NAME", "unlock": "unlock NAME [--force]",
		"map": "map VOLUME", "unmap": "unmap VOLUME", "showmapped": "showmapped",
		"list": "list [PREFIX]", "ls": "ls [PREFIX]",
	}
	counts := map[string]int{"create": 1, "remove": 1, "rm": 1, "info": 1, "resize": 1, "snapshot": 2, "clone": 2,
		"rename": 2, "open": 1, "close": 1, "hash": 1, "import": 2, "export": 2, "lock": 1, "unlock": 1,
		"map": 1, "unmap": 1, "showmapped": 0, "list": 0, "ls": 0}
	form, ok := forms[cmd]
	if !ok {
		return cli.Usagef("unknown command %q: see vlmc --help", cmd)
	}
	prefix := ""
	if (cmd == "list" || cmd == "ls") && len(args) == 1 {
		prefix, args = args[0], nil
	}
	if err := nargs(args, counts[cmd], form); err != nil {
		return err
	}
	switch {
	case cmd == "create" && o.from == "" && !sizeSet:
		return cli.Usagef("create %s: --size is required (e.g. --size 10G), or --from SNAPSHOT", args[0])
	case cmd == "resize" && !sizeSet:
		return cli.Usagef("resize %s: --size is required", args[0])
	case cmd == "lock" && o.force:
		return cli.Usagef("lock %s: no --force; if the host holding it is dead, vlmc unlock --force %s first", args[0], args[0])
	}
	h, err := hostconf.Load(o.config)
	if err != nil {
		return err
	}
	var result any
	switch cmd { // the export table alone: no segment needed
	case "unmap":
		result, err = unmapVolume(h, args[0])
		return printResult(o, result, err)
	case "showmapped":
		result, err = showMapped(h)
		return printResult(o, result, err)
	}
	v, err := dial(h, o.timeout)
	if err != nil {
		return err
	}
	defer v.Close()
	c := &commands{v: v, o: o}
	switch cmd {
	case "create":
		result, err = c.create(args[0], o.from, o.size.Bytes)
	case "clone":
		result, err = c.create(args[1], args[0], o.size.Bytes)
	case "remove", "rm":
		result, err = c.remove(args[0])
	case "info":
		result, err = c.info(args[0])
	case "resize":
		result, err = c.resize(args[0], o.size.Bytes, o.force)
	case "snapshot":
		result, err = c.snapshot(args[0], args[1])
	case "rename":
		result, err = c.rename(args[0], args[1])
	case "open", "close":
		result, err = c.openClose(cmd, args[0], o.force)
	case "lock", "unlock":
		result, err = c.lockUnlock(cmd, args[0], o.force)
	case "list", "ls":
		result, err = c.list(prefix)
	case "hash":
		result, err = c.hash(args[0])
	case "import":
		result, err = c.importImage(args[0], args[1])
	case "export":
		result, err = c.exportImage(args[0], args[1])
	case "map":
		result, err = c.mapVolume(h, args[0])
	}
	if err != nil {
		return err
	}
	if cmd == "export" && args[1] == "-" {
		// Standard output holds the image: report on standard error.
		if o.json {
			enc := json.NewEncoder(os.Stderr)
			enc.SetIndent("", "  ")
			return enc.Encode(result)
		}
		return nil
	}
	return printResult(o, result, nil)
}

// printResult prints a command's result, as JSON with --json.
func printResult(o *options, result any, err error) error {
	if err != nil {
		return err
	}
	if o.json {
		return cli.PrintJSON(result)
	}
	if s, ok := result.(fmt.Stringer); ok {
		fmt.Println(s.String())
	}
	return nil
}
