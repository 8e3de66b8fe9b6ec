package event

import (
	"bytes"
	"testing"
)

func TestIDRoundTrip(t *testing.T) {
	e := &Event{Site: "example.com", VisitorID: 7, Time: 1, Name: PageviewName, Path: "/", ID: "7-3-1"}
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"eid":"7-3-1"`)) {
		t.Errorf("encoded event %s does not carry its id as \"eid\"", b[1:])
	}
	back, err := Decode(b)
	if err != nil || back.ID != "7-3-1" {
		t.Fatalf("decoded %+v, %v", back, err)
	}
}

// An event without an id encodes as it did before ids existed, and an event written
// before them decodes with no id.
func TestNoIDIsUnchanged(t *testing.T) {
	b, err := Encode(&Event{Site: "example.com", VisitorID: 7, Time: 1, Name: PageviewName, Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("eid")) {
		t.Errorf("an event without an id encodes an \"eid\" field: %s", b[1:])
	}
	old := append([]byte{1}, `{"site":"example.com","vid":7,"ts":1,"n":"pageview","host":"example.com","path":"/"}`...)
	e, err := Decode(old)
	if err != nil || e.ID != "" || e.Path != "/" {
		t.Fatalf("old event decoded as %+v, %v", e, err)
	}
}

func TestIsEngagement(t *testing.T) {
	for name, want := range map[string]bool{EngagementName: true, PageviewName: false, "Signup": false, "Engagement": false} {
		e := &Event{Name: name}
		if e.IsEngagement() != want {
			t.Errorf("%q: IsEngagement() = %v", name, !want)
		}
		if e.IsEngagement() && e.IsPageview() {
			t.Errorf("%q is both", name)
		}
	}
}
