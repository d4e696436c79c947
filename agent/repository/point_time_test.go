package repository

import (
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Two points made within one second keep their order.
func TestPointTimesKeepSubSecondOrder(t *testing.T) {
	at := time.Date(2026, 11, 22, 5, 31, 49, 123456000, time.UTC)
	b, err := encMode.Marshal(&Point{Time: at})
	if err != nil {
		t.Fatal(err)
	}
	var p Point
	if err := decMode.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if !p.Time.Equal(at) {
		t.Fatalf("point time %s came back as %s", at, p.Time)
	}
	// Points written before keep reading: whole seconds.
	secs, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	old, _ := secs.Marshal(&Point{Time: at.Truncate(time.Second)})
	if err := decMode.Unmarshal(old, &p); err != nil || !p.Time.Equal(at.Truncate(time.Second)) {
		t.Fatalf("old point time: %v %s", err, p.Time)
	}
}
