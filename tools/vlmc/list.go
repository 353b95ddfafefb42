package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/archipelago-go/archipelago/peers/mapper"
	"github.com/archipelago-go/archipelago/peers/protocol"
	"github.com/archipelago-go/archipelago/tools/cli"
	"github.com/archipelago-go/archipelago/xseg"
)

// Buffers of vlmc list's pages: the first holds about a thousand volumes,
// the next as many as mapperd says are left, up to maxListPage.
const (
	firstListPage = 64 << 10
	maxListPage   = 4 << 20
)

// listed is one volume of vlmc list.
type listed struct {
	Volume    string `json:"volume"`
	Size      uint64 `json:"size_bytes"`
	BlockSize uint64 `json:"block_size_bytes"`
	ReadOnly  bool   `json:"read_only"`
}

// listResult is what vlmc list prints: a table, or with --json an array.
type listResult struct {
	volumes []listed
	prefix  string
}

// MarshalJSON makes the result a JSON array, [] when empty.
func (l *listResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(l.volumes)
}

// String is a table of name, size, block size and type, one volume a line
// after a header, or a line saying there is none.
func (l *listResult) String() string {
	if len(l.volumes) == 0 {
		if l.prefix != "" {
			return fmt.Sprintf("no volume's name starts with %q", l.prefix)
		}
		return "no volumes (vlmc create NAME --size S makes one)"
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSIZE\tBLOCK\tTYPE")
	for _, v := range l.volumes {
		kind := "volume"
		if v.ReadOnly {
			kind = "snapshot"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Volume, cli.FormatSize(v.Size), cli.FormatSize(v.BlockSize), kind)
	}
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// list asks mapperd (through vlmcd) for the volumes whose names start with
// prefix, page after page.
func (c *commands) list(prefix string) (*listResult, error) {
	if err := mapper.CheckPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	out := &listResult{volumes: []listed{}, prefix: prefix}
	after, bufLen := "", uint64(firstListPage)
	for {
		page, err := c.listPage(prefix, after, bufLen)
		if err != nil {
			return nil, err
		}
		for _, v := range page.Volumes {
			out.volumes = append(out.volumes, listed{Volume: v.Name, Size: v.Size, BlockSize: v.BlockSize, ReadOnly: v.ReadOnly()})
		}
		if !page.More {
			return out, nil
		}
		after = page.Volumes[len(page.Volumes)-1].Name
		bufLen = min(max(page.RestBytes, firstListPage), maxListPage)
	}
}

// listPage sends one LIST and decodes its reply, which must continue the
// listing after after.
func (c *commands) listPage(prefix, after string, bufLen uint64) (protocol.VolumeList, error) {
	payload, err := nameData(after)
	if err != nil {
		return protocol.VolumeList{}, err
	}
	rep, err := c.v.do(req{op: xseg.OpList, target: prefix, data: payload, bufLen: bufLen}, nil)
	if err != nil {
		return protocol.VolumeList{}, err
	}
	page, err := protocol.DecodeVolumeList(rep.data[:min(uint64(len(rep.data)), rep.serviced)])
	if err == nil && len(page.Volumes) > 0 && page.Volumes[0].Name <= after {
		err = fmt.Errorf("page after %q starts at %q", after, page.Volumes[0].Name)
	}
	if err != nil {
		return protocol.VolumeList{}, fmt.Errorf("list %q: bad reply from mapperd: %w", prefix, err)
	}
	return page, nil
}
