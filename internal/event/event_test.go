package event

import (
	"testing"
)

func TestIDRoundTrip(t *testing.T) {
	e := &Event{Site: "example.com", VisitorID: 7, Time: 1, Name: PageviewName, Path: "/", ID: "7-3-1"}
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil || back.ID != "7-3-1" {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	old := append([]byte{VersionJSON}, `{"site":"example.com","vid":7,"ts":1,"n":"pageview","path":"/","eid":"7-3-1"}`...)
	if back, err := Decode(old); err != nil || back.ID != "7-3-1" {
		t.Fatalf("version 1 event decoded as %+v, %v", back, err)
	}
}

// An event written before ids existed decodes with no id.
func TestNoIDIsUnchanged(t *testing.T) {
	b, err := Encode(&Event{Site: "example.com", VisitorID: 7, Time: 1, Name: PageviewName, Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := Decode(b); err != nil || e.ID != "" {
		t.Fatalf("event without an id decoded as %+v, %v", e, err)
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
