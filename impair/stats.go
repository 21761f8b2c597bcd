package impair

import "sync/atomic"

// typeCounters count what happened to the datagrams of one message type in
// one direction. They are written by the relay's loop and read by Stats at
// any time.
type typeCounters struct {
	received, lost, duplicated, reordered, sent, sendErrors atomic.Uint64
}

// dirCounters are one direction's counters, by message type.
type dirCounters [numTypes]typeCounters

// Counters is what the relay did to the datagrams of one message type (or
// to all of them) in one direction. Every datagram received is lost or
// sent, and every copy made by duplication is sent too, so once nothing is
// held or delayed: Sent + SendErrors = Received - Lost + Duplicated.
type Counters struct {
	Received   uint64 `json:"received"`
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"` // extra copies made
	Reordered  uint64 `json:"reordered"`  // datagrams and copies held back to be overtaken
	Sent       uint64 `json:"sent"`
	SendErrors uint64 `json:"send_errors"`
}

func (c *Counters) add(o Counters) {
	c.Received += o.Received
	c.Lost += o.Lost
	c.Duplicated += o.Duplicated
	c.Reordered += o.Reordered
	c.Sent += o.Sent
	c.SendErrors += o.SendErrors
}

func (t *typeCounters) snapshot() Counters {
	return Counters{
		Received:   t.received.Load(),
		Lost:       t.lost.Load(),
		Duplicated: t.duplicated.Load(),
		Reordered:  t.reordered.Load(),
		Sent:       t.sent.Load(),
		SendErrors: t.sendErrors.Load(),
	}
}

// Direction is one direction's counters by message type name ("initiation",
// "response", "cookie", "transport", "other") and their sum ("all").
type Direction map[string]Counters

func (d *dirCounters) snapshot() Direction {
	out := Direction{}
	var all Counters
	for t := range numTypes {
		c := d[t].snapshot()
		out[t.String()] = c
		all.add(c)
	}
	out["all"] = all
	return out
}

// Stats is a snapshot of a relay's counters, shaped for JSON.
type Stats struct {
	Upstream string `json:"upstream"`
	Client   string `json:"client"` // last client address seen, "" before the first
	// ToUpstream counts datagrams from clients, FromUpstream those from the
	// upstream to the last client; Total is their sum.
	ToUpstream   Direction `json:"to_upstream"`
	FromUpstream Direction `json:"from_upstream"`
	Total        Direction `json:"total"`
	// NoClient counts datagrams from the upstream that arrived before any
	// client had spoken: there was nowhere to send them.
	NoClient uint64 `json:"no_client"`
	Config   Config `json:"config"`
}

func sumDirections(a, b Direction) Direction {
	out := Direction{}
	for k, v := range a {
		v.add(b[k])
		out[k] = v
	}
	return out
}
