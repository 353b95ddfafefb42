// Command xseg creates, destroys, inspects and repairs XSEG segments.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

const usage = `Usage: xseg COMMAND NAME [flags]

Create, inspect and repair the shared-memory segment through which the
peers of a host talk. A segment is the file /dev/shm/NAME.

Commands:
  create NAME    make a new segment (mode 0660); geometry flags below
  destroy NAME   remove the segment's name; joined processes keep their mapping
  report NAME    show geometry, free request slots and buffer space, and each
                 bound port: owner pid and whether it lives, ring depths and
                 counters (--json for scripts, --all for every port)
  recover NAME   reclaim now the ports of dead processes and fail back their
                 requests (every joined process also does this on its own
                 within a fraction of a second)

Run "xseg COMMAND --help" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "create":
		err = create(args)
	case "destroy":
		err = destroy(args)
	case "report":
		err = report(args)
	case "recover":
		err = recoverCmd(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		err = cli.Usagef("unknown command %q (try xseg --help)", cmd)
	}
	if err != nil {
		cli.Fatal("xseg "+cmd, err)
	}
}

// command parses a command's flags and its single NAME argument.
func command(name, summary string, args []string, define func(*flag.FlagSet)) (string, *xseg.Options, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	opts := &xseg.Options{}
	fs.StringVar(&opts.Dir, "dir", xseg.DefaultDir, "directory that holds segments")
	if define != nil {
		define(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: xseg %s NAME [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return "", nil, err
	}
	if len(pos) != 1 {
		return "", nil, cli.Usagef("want one segment NAME, got %d arguments", len(pos))
	}
	return pos[0], opts, nil
}

func create(args []string) error {
	g := xseg.DefaultGeometry
	buffer := cli.SizeFlag{Bytes: g.BufferBytes}
	var ports, static, requests uint
	name, opts, err := command("create", "Create a segment.", args, func(fs *flag.FlagSet) {
		fs.UintVar(&ports, "ports", uint(g.Ports), "number of ports")
		fs.UintVar(&static, "static-ports", uint(g.StaticPorts), "ports 0 to N-1 are bound by number (peers); the rest are dynamic (clients)")
		fs.UintVar(&requests, "requests", uint(g.Requests), "request slots shared by all ports")
		fs.Var(&buffer, "buffer", "data buffer space (K/M/G suffixes), a multiple of 256K")
	})
	if err != nil {
		return err
	}
	g = xseg.Geometry{Ports: uint32(ports), StaticPorts: uint32(static), Requests: uint32(requests), BufferBytes: buffer.Bytes}
	if err := xseg.Create(name, g, *opts); err != nil {
		return err
	}
	fmt.Printf("created segment %s: %d ports (%d static), %d requests, %s buffer space\n",
		name, g.Ports, g.StaticPorts, g.Requests, cli.FormatSize(g.BufferBytes))
	return nil
}

func destroy(args []string) error {
	name, opts, err := command("destroy", "Remove a segment's name.", args, nil)
	if err != nil {
		return err
	}
	return xseg.Destroy(name, *opts)
}

func report(args []string) error {
	var asJSON, all bool
	name, opts, err := command("report", "Show a segment's state without stopping anything.", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		fs.BoolVar(&all, "all", false, "list every port, not only bound or used ones")
	})
	if err != nil {
		return err
	}
	opts.NoMonitor = true
	s, err := xseg.Join(name, *opts)
	if err != nil {
		return err
	}
	defer s.Leave()
	rep := s.Report(all)
	if asJSON {
		return cli.PrintJSON(rep)
	}
	printReport(os.Stdout, rep)
	return nil
}

func printReport(w io.Writer, r xseg.Report) {
	g := r.Geometry
	fmt.Fprintf(w, "segment %s (layout %d), %s, created %s\n", r.Name, r.Version, cli.FormatSize(r.SizeBytes), r.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "ports %d (static 0-%d), requests %d free of %d, buffer %s free of %s\n",
		g.Ports, int(g.StaticPorts)-1, r.FreeRequests, g.Requests, cli.FormatSize(r.BufferFree), cli.FormatSize(g.BufferBytes))
	fmt.Fprintf(w, "request slots: %d free, %d held, %d queued, %d serving, %d replied\n\n",
		r.SlotStates["free"], r.SlotStates["held"], r.SlotStates["queued"], r.SlotStates["serving"], r.SlotStates["replied"])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PORT\tKIND\tSTATE\tOWNER\tLIVE\tQUEUED\tREPLIES\tSUBMITTED\tSERVED\tFAILED\tIN-FLIGHT\tWAKEUPS\t")
	for _, p := range r.Ports {
		owner, live := "-", "-"
		if p.OwnerPID != 0 {
			owner, live = fmt.Sprint(p.OwnerPID), map[bool]string{true: "yes", false: "DEAD"}[p.Alive]
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Port, p.Kind, p.State, owner, live,
			p.Queued, p.Replies, p.Submitted, p.Served, p.Failed, p.InFlight, p.Wakeups)
	}
	tw.Flush()
}

func recoverCmd(args []string) error {
	var asJSON bool
	name, opts, err := command("recover", "Reclaim the ports of dead processes now.", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	opts.NoMonitor = true
	s, err := xseg.Join(name, *opts)
	if err != nil {
		return err
	}
	defer s.Leave()
	st := s.Recover()
	if asJSON {
		return cli.PrintJSON(st)
	}
	fmt.Printf("reclaimed %d ports %v, failed back %d requests, freed %d request slots\n", len(st.Ports), st.Ports, st.FailedBack, st.Freed)
	return nil
}
