package noise

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
)

// wgVector holds messages captured from a live exchange between this
// package and wireguard-go's device (golang.zx2c4.com/wireguard/device)
// over loopback UDP, together with the throwaway keys used. Replaying our
// side deterministically must reproduce our messages byte for byte and
// accept wireguard-go's.
var wgVector = struct {
	myPriv, wgPriv, psk string
	// We initiated: our ephemeral key, clock and index, our initiation
	// (with mac1), wireguard-go's response and its first data message.
	iNow                                              int64
	iIndex                                            uint32
	iEphemeral, iInitiation, iResponse, iData, iPlain string
	// wireguard-go initiated: its initiation, our ephemeral key and index,
	// our response (as marshalled, before mac1), and its first data message.
	rEphemeral, rInitiation, rResponse, rData, rPlain string
	rIndex                                            uint32
}{
	myPriv:     "20fd777d78fd1ec0cefec279f8cccaba80f49903bab3fbbdf50e958c5b94d061",
	wgPriv:     "383d4538bd5242d4c177328695bb63700743179b3d8742c67f3a6511b8fb585b",
	psk:        "696e7465726f7020707265736861726564206b65792030313233343536373839",
	iNow:       1795693311070162634,
	iIndex:     1,
	iEphemeral: "30a2ed2fcf656f9f467a024893a28dfebaf5b1543a5370239a241bf2079d4045",
	iInitiation: "010000000100000095281a877fab6d17654418b88ebb52c4867b594dd759fe7d" +
		"6a7a2721a6919870bcd4a195b10ec447ce97200cd609bc8287a469a51b1e9abb" +
		"34cdb4d9cb7f2d291c67bbb8128c94956dfb5f33b2dbfcc399f644070b334b2a" +
		"ed83e2a15d6faa380782f6b77e4c692ca6cae23544190ac2ebb022f843a160f2" +
		"01ba0ad300000000000000000000000000000000",
	iResponse: "02000000ff33dd430100000073ff738b34c5b41a29cd58df1acbab3065cb0083" +
		"e51f40084c3ff615689eb816f79d8f46f34ea19daa1f95f77f3ce85cf8d5c22f" +
		"b5e6f02fe36dd7c908b181b700000000000000000000000000000000",
	iData: "04000000010000000000000000000000eb61e6e97d32dd7224b04f789686981c" +
		"7848246e8e3962dddcb2c49ab6f69fdbd651da47a9c8245bee8177219e3a1195",
	iPlain:     "450000200000000041010a26c0000201c0000202080002c70000000005390000",
	rEphemeral: "88cecc7d6907a8e328dacec5f6a85a1373e04e691500c102d758152cbb5a1e52",
	rInitiation: "01000000353f97addf4e19fc091aea76b444b3192980ebdd23f476ff64dedbed" +
		"707f4f7daa865e4c7c8e289c56322d7e6b45299219fc8d589ffaac0049577c4b" +
		"f39b553cb4f4adc5160b8c6f470bbcd0b78ab0527d7564a1c05c5dfad3e026bb" +
		"f3382f3f6c3e3c76a873a3e3bfe08b13222eacfe30c467504c8aa1440b44f998" +
		"8010168200000000000000000000000000000000",
	rResponse: "0200000002000000353f97ad5db6b576ee1151d0fc3463945f5c720bf2486387" +
		"52e1f5e991d6a707c3586d5ef7bbc0332c38b779b78c220204615b0800000000" +
		"00000000000000000000000000000000000000000000000000000000",
	rData: "0400000002000000000000000000000006dfdc01d84816febcb0afc0e2c98ecf" +
		"603392a82958bf912e3de0c9674436b06f1fe36c6f08161dc182bc51433ad416",
	rPlain: "450000200000000041010a26c0000201c0000202080002c70000000005390000",
	rIndex: 2,
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorSetup(t *testing.T) (*Local, *Handshake, keys.Public) {
	t.Helper()
	v := wgVector
	local := NewLocal(keys.Private(unhex(t, v.myPriv)))
	wgPub := keys.Private(unhex(t, v.wgPriv)).Public()
	h, err := NewHandshake(local, wgPub, keys.Preshared(unhex(t, v.psk)))
	if err != nil {
		t.Fatal(err)
	}
	return local, h, wgPub
}

func fixedEphemeral(t *testing.T, h *Handshake, s string) {
	e := keys.Private(unhex(t, s))
	h.newEphemeral = func() (keys.Private, error) { return e, nil }
}

func TestWireGuardGoVectorInitiator(t *testing.T) {
	v := wgVector
	local, h, wgPub := vectorSetup(t)
	fixedEphemeral(t, h, v.iEphemeral)
	now := time.Unix(0, v.iNow)
	init, err := h.CreateInitiation(now, v.iIndex)
	if err != nil {
		t.Fatal(err)
	}
	msg := init.Marshal(nil)
	NewCookieGenerator(wgPub).AddMACs(msg, now)
	if want := unhex(t, v.iInitiation); !bytes.Equal(msg, want) {
		t.Fatalf("initiation differs from the one wireguard-go accepted:\n got %x\nwant %x", msg, want)
	}
	rb := unhex(t, v.iResponse)
	if !NewCookieChecker(local.Public).CheckMAC1(rb) {
		t.Fatal("mac1 of wireguard-go's response refused")
	}
	var resp Response
	if err := resp.Unmarshal(rb); err != nil {
		t.Fatal(err)
	}
	if err := h.ConsumeResponse(&resp); err != nil {
		t.Fatalf("ConsumeResponse of wireguard-go's response: %v", err)
	}
	kp, err := h.BeginSession(now)
	if err != nil {
		t.Fatal(err)
	}
	pt, c, err := kp.Open(nil, unhex(t, v.iData))
	if err != nil || c != 0 || !bytes.HasPrefix(pt, unhex(t, v.iPlain)) {
		t.Fatalf("Open of wireguard-go's data = %x, %d, %v", pt, c, err)
	}
}

func TestWireGuardGoVectorResponder(t *testing.T) {
	v := wgVector
	local, h, wgPub := vectorSetup(t)
	ib := unhex(t, v.rInitiation)
	if !NewCookieChecker(local.Public).CheckMAC1(ib) {
		t.Fatal("mac1 of wireguard-go's initiation refused")
	}
	var init Initiation
	if err := init.Unmarshal(ib); err != nil {
		t.Fatal(err)
	}
	got, err := local.ConsumeInitiation(&init, t0, func(k keys.Public) *Handshake {
		if k == wgPub {
			return h
		}
		return nil
	})
	if err != nil || got != h {
		t.Fatalf("ConsumeInitiation of wireguard-go's initiation: %v", err)
	}
	fixedEphemeral(t, h, v.rEphemeral)
	resp, err := h.CreateResponse(v.rIndex)
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Marshal(nil) // recorded before mac1 was added
	if want := unhex(t, v.rResponse); !bytes.Equal(msg, want) {
		t.Fatalf("response differs from the one wireguard-go accepted:\n got %x\nwant %x", msg, want)
	}
	kp, err := h.BeginSession(t0)
	if err != nil {
		t.Fatal(err)
	}
	pt, c, err := kp.Open(nil, unhex(t, v.rData))
	if err != nil || c != 0 || !bytes.HasPrefix(pt, unhex(t, v.rPlain)) {
		t.Fatalf("Open of wireguard-go's data = %x, %d, %v", pt, c, err)
	}
}
