package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// DecodeFile prints a pcap or pcapng file (detected from its first bytes;
// gzip-compressed pcap is accepted too) with one line per packet, in the
// same format as the live packet log, followed by a per-flow summary sorted
// by bytes and the drop counts recorded in the file.
//
// The label of each line is the pcapng interface name: for files written by
// Writer that is "tun→beta", "beta→tun", "wire-out" or "wire-in". Packets
// may be raw IP (LINKTYPE_RAW, IPV4, IPV6), Ethernet, Linux cooked (SLL and
// SLL2) or BSD loopback. Times are printed in the local time zone.
func DecodeFile(w io.Writer, path string) error {
	return decodeFile(w, path, time.Local)
}

// packetSource is what DecodeFile needs from either reader.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

type flowStats struct {
	flow        Flow
	packets     uint64
	bytes       uint64
	first, last time.Time
}

func decodeFile(w io.Writer, path string, loc *time.Location) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("decode %s: too short to be a capture file: %w", path, err)
	}

	var (
		src      packetSource
		ng       *pcapgo.NgReader
		linkType layers.LinkType
		stats    = map[int]pcapgo.NgInterfaceStatistics{}
	)
	if binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		ng, err = pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{
			WantMixedLinkType: true,
			StatisticsCallback: func(id int, s pcapgo.NgInterfaceStatistics) {
				stats[id] = s
			},
		})
		if err != nil {
			return fmt.Errorf("decode %s: bad pcapng file: %w", path, err)
		}
		src = ng
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return fmt.Errorf("decode %s: not a pcap or pcapng file: %w", path, err)
		}
		linkType = r.LinkType()
		src = r
	}

	out := bufio.NewWriter(w)
	defer func() {
		if ferr := out.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("decode %s: write: %w", path, ferr)
		}
	}()

	dec := NewDecoder()
	flows := map[Flow]*flowStats{}
	var (
		line, sum []byte
		n         int
		bad       int
		readErr   error
	)
	for {
		data, ci, rerr := src.ReadPacketData()
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				readErr = fmt.Errorf("decode %s: after %d packets: %w", path, n, rerr)
			}
			break
		}
		n++
		lt := linkType
		dir, label := DirUnknown, "-"
		if ng != nil {
			if len(ci.AncillaryData) > 0 {
				if t, ok := ci.AncillaryData[0].(layers.LinkType); ok {
					lt = t
				}
			}
			if intf, ierr := ng.Interface(ci.InterfaceIndex); ierr == nil && intf.Name != "" {
				dir, label = parseLabel(intf.Name)
			} else {
				label = "if" + strconv.Itoa(ci.InterfaceIndex)
			}
		}
		sum = sum[:0]
		ip, hdr, note := stripLink(lt, data)
		var flowOK bool
		var fl Flow
		if ip == nil {
			sum = append(sum, note...)
		} else {
			sum = dec.Summarize(sum, ip)
			fl, flowOK = dec.flow(), dec.bad.what == ""
		}
		line = FormatLine(line[:0], ci.Timestamp.In(loc), dir, label, sum)
		line = append(line, '\n')
		if _, err := out.Write(line); err != nil {
			return fmt.Errorf("decode %s: write: %w", path, err)
		}
		if !flowOK {
			bad++
			continue
		}
		size := uint64(max(ci.Length-hdr, len(ip)))
		s := flows[fl]
		if s == nil {
			s = &flowStats{flow: fl, first: ci.Timestamp}
			flows[fl] = s
		}
		s.packets++
		s.bytes += size
		s.last = ci.Timestamp
	}

	writeSummary(out, flows, bad, loc)
	if ng != nil {
		ids := make([]int, 0, len(stats))
		for id := range stats {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		for _, id := range ids {
			s := stats[id]
			if s.PacketsDropped == 0 || s.PacketsDropped == pcapgo.NgNoValue64 {
				continue
			}
			name := "if" + strconv.Itoa(id)
			if intf, err := ng.Interface(id); err == nil && intf.Name != "" {
				name = string(appendClean(nil, intf.Name))
			}
			fmt.Fprintf(out, "dropped by capture on %s: %d packets\n", name, s.PacketsDropped)
		}
	}
	return readErr
}

func writeSummary(out io.Writer, flows map[Flow]*flowStats, bad int, loc *time.Location) {
	list := make([]*flowStats, 0, len(flows))
	for _, s := range flows {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.bytes != b.bytes {
			return a.bytes > b.bytes
		}
		if a.packets != b.packets {
			return a.packets > b.packets
		}
		return a.flow.String() < b.flow.String()
	})
	fmt.Fprintf(out, "flows: %d\n", len(list))
	for _, s := range list {
		fmt.Fprintf(out, "  %s packets=%d bytes=%d first=%s last=%s\n", s.flow, s.packets, s.bytes,
			s.first.In(loc).Format(TimeLayout), s.last.In(loc).Format(TimeLayout))
	}
	if bad > 0 {
		fmt.Fprintf(out, "malformed or not IP: %d packets\n", bad)
	}
}

// stripLink removes the link-layer header of data and returns the IP packet
// and the header length, or nil and a note saying why there is no IP packet.
func stripLink(lt layers.LinkType, data []byte) (ip []byte, hdr int, note string) {
	var proto uint16
	switch lt {
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12, 14:
		// 12 and 14 are DLT_RAW on some BSDs.
		return data, 0, ""
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(data) < 4 {
			return nil, 0, "malformed: loopback header truncated"
		}
		return data[4:], 4, ""
	case layers.LinkTypeEthernet:
		hdr = 14
		if len(data) < hdr {
			return nil, 0, "malformed: Ethernet header truncated"
		}
		proto = binary.BigEndian.Uint16(data[12:14])
		for proto == 0x8100 || proto == 0x88a8 { // VLAN tags
			if len(data) < hdr+4 {
				return nil, 0, "malformed: VLAN header truncated"
			}
			proto = binary.BigEndian.Uint16(data[hdr+2 : hdr+4])
			hdr += 4
		}
	case layers.LinkTypeLinuxSLL:
		hdr = 16
		if len(data) < hdr {
			return nil, 0, "malformed: Linux cooked header truncated"
		}
		proto = binary.BigEndian.Uint16(data[14:16])
	case layers.LinkTypeLinuxSLL2:
		hdr = 20
		if len(data) < hdr {
			return nil, 0, "malformed: Linux cooked v2 header truncated"
		}
		proto = binary.BigEndian.Uint16(data[0:2])
	default:
		return nil, 0, "unsupported link type " + strconv.Itoa(int(lt))
	}
	switch proto {
	case 0x0800, 0x86dd:
		return data[hdr:], hdr, ""
	case 0x0806:
		return nil, hdr, "ARP"
	}
	return nil, hdr, "not IP (ethertype 0x" + strconv.FormatUint(uint64(proto), 16) + ")"
}
