package tunnel

import "errors"

// Changes says what Reconfigure did, by peer name.
type Changes struct {
	// Added are new peers (by public key); they can handshake at once.
	Added []string `json:"added,omitempty"`
	// Removed are peers no longer in the set: their sessions are wiped and
	// their routes gone.
	Removed []string `json:"removed,omitempty"`
	// Updated are peers whose name, prefixes, endpoint or keepalive
	// changed; they keep their current session.
	Updated []string `json:"updated,omitempty"`
	// Rekeyed are peers whose preshared key changed: a new handshake with
	// the new key is started.
	Rekeyed []string `json:"rekeyed,omitempty"`
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Updated) == 0 && len(c.Rekeyed) == 0
}

// Reconfigure replaces the device's peer set with peers, diffed by public
// key, while the device runs. CONTRACT PLACEHOLDER: being implemented.
func (d *Device) Reconfigure(peers []PeerConfig) (Changes, error) {
	return Changes{}, errors.New("tunnel: Reconfigure is not implemented yet")
}
