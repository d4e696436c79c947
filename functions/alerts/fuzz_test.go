package alerts

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeMessage: the alert body comes off a queue, so any bytes must be
// refused cleanly or decode to an alert that survives its own round trip.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(validBody))
	f.Add([]byte(`{"id":"a","vaultId":"b","severity":"warning","kind":"missed_backup","title":"t","raisedAt":"2030-01-01T00:00:00Z","acknowledgedAt":"2030-01-02T00:00:00-05:00"}`))
	f.Add([]byte(`{"id":"a","vaultId":"b","severity":"warning","kind":"missed_backup","title":"\u00e9\ud800","raisedAt":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := DecodeMessage(body)
		if err != nil {
			return
		}
		if validate(a) != nil {
			t.Fatalf("decoded an alert that does not validate: %+v", a)
		}
		again, err := encode(a)
		if err != nil {
			t.Fatalf("a decoded alert does not encode: %v", err)
		}
		b, err := DecodeMessage(again)
		if err != nil {
			t.Fatalf("re-encoded alert refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the alert:\n%+v\n%+v", a, b)
		}
		if _, err := json.Marshal(a); err != nil {
			t.Fatal(err)
		}
	})
}
