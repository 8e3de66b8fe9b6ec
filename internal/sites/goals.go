package sites

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/glimpse-analytics/glimpse/internal/event"
)

// Limits on a site's goals.
const (
	MaxGoals       = 100
	MaxGoalNameLen = 120
)

// ErrNoSuchSite is returned by the goal and currency helpers for a domain that is not a site.
var ErrNoSuchSite = errors.New("no such site")

// Goal is one conversion a site counts: a custom event by name, or a page view of a page
// whose path matches a pattern. Exactly one of Event and Page is set.
//
// A page pattern matches the whole path: "*" stands for any characters within one path
// segment (no "/"), "**" for any characters including "/"; everything else is literal.
// "/blog/*" matches /blog/go but neither /blog nor /blog/go/part-2; "/blog/**" matches both
// of the latter.
type Goal struct {
	// Name is what the query API shows as the goal (the event:goal value); it defaults to
	// the event name, or to "Visit <pattern>" for a page goal.
	Name  string `json:"name"`
	Event string `json:"event,omitempty"`
	Page  string `json:"page,omitempty"`
}

// Kind is "event" or "page".
func (g Goal) Kind() string {
	if g.Page != "" {
		return "page"
	}
	return "event"
}

// Definition is how the goal is written: the event name, or the page pattern.
func (g Goal) Definition() string {
	if g.Page != "" {
		return g.Page
	}
	return g.Event
}

// Normalize checks g and fills in its default name.
func (g Goal) Normalize() (Goal, error) {
	g.Name = strings.TrimSpace(g.Name)
	g.Event = strings.TrimSpace(g.Event)
	g.Page = strings.TrimSpace(g.Page)
	switch {
	case g.Event == "" && g.Page == "":
		return Goal{}, errors.New("a goal is either a custom event (--event=Signup) or a page pattern (--page=/pricing, --page=/blog/*)")
	case g.Event != "" && g.Page != "":
		return Goal{}, errors.New("a goal is either an event or a page, not both: make two goals")
	case g.Event != "":
		if len(g.Event) > event.MaxNameLen || !utf8.ValidString(g.Event) {
			return Goal{}, fmt.Errorf("the goal's event name must be valid UTF-8 of at most %d bytes (the collector's limit on event names)", event.MaxNameLen)
		}
		if g.Event == event.PageviewName || g.Event == event.EngagementName {
			return Goal{}, fmt.Errorf("%q is not a custom event; to count visits of pages make a page goal such as --page=/pricing", g.Event)
		}
		if g.Name == "" {
			g.Name = g.Event
		}
	default:
		if !strings.HasPrefix(g.Page, "/") {
			return Goal{}, fmt.Errorf("page pattern %q must start with \"/\", e.g. /pricing or /blog/*", g.Page)
		}
		if len(g.Page) > event.MaxPathLen || !utf8.ValidString(g.Page) {
			return Goal{}, fmt.Errorf("a page pattern must be valid UTF-8 of at most %d bytes", event.MaxPathLen)
		}
		if strings.Contains(g.Page, "***") {
			return Goal{}, fmt.Errorf("page pattern %q has \"***\"; use * (within a path segment) or ** (across segments)", g.Page)
		}
		if g.Name == "" {
			g.Name = "Visit " + g.Page
		}
	}
	if len(g.Name) > MaxGoalNameLen || !utf8.ValidString(g.Name) {
		return Goal{}, fmt.Errorf("a goal name must be valid UTF-8 of at most %d bytes; choose a shorter one with --name", MaxGoalNameLen)
	}
	for _, r := range g.Name {
		if r < ' ' || r == 0x7f {
			return Goal{}, errors.New("a goal name must not contain control characters")
		}
	}
	return g, nil
}

// PagePattern compiles a page goal's pattern (see Goal) into a regular expression that
// matches whole paths.
func PagePattern(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(".*")
			i += 2
		case pattern[i] == '*':
			b.WriteString("[^/]*")
			i++
		default:
			j := strings.IndexByte(pattern[i:], '*')
			if j < 0 {
				j = len(pattern) - i
			}
			b.WriteString(regexp.QuoteMeta(pattern[i : i+j]))
			i += j
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// normalizeGoals checks a site's goal list: each goal valid, at most MaxGoals, names unique
// (ignoring case, so that the query API's goal filters are unambiguous) and no goal twice.
func normalizeGoals(list []Goal) ([]Goal, error) {
	if len(list) > MaxGoals {
		return nil, fmt.Errorf("a site has at most %d goals, got %d; remove some with glimpse sites goals remove", MaxGoals, len(list))
	}
	out := make([]Goal, 0, len(list))
	for _, g := range list {
		n, err := g.Normalize()
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if strings.EqualFold(o.Name, n.Name) {
				return nil, fmt.Errorf("the site has a goal named %q already; choose another name with --name", o.Name)
			}
			if o.Event == n.Event && o.Page == n.Page {
				return nil, fmt.Errorf("the site counts %s %q already, as goal %q", n.Kind(), n.Definition(), o.Name)
			}
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// ValidateCurrency checks a reporting currency: three letters (ISO 4217), upper-cased; ""
// stands for none.
func ValidateCurrency(c string) (string, error) {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "" {
		return "", nil
	}
	if len(c) != event.MaxCurrencyLen {
		return "", fmt.Errorf("currency %q is not a 3-letter ISO 4217 code such as EUR or USD", c)
	}
	for i := 0; i < len(c); i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return "", fmt.Errorf("currency %q is not a 3-letter ISO 4217 code such as EUR or USD", c)
		}
	}
	return c, nil
}

// AddGoal adds g to the goals of site domain and returns the goal as stored.
func (d *Directory) AddGoal(ctx context.Context, domain string, g Goal) (Goal, error) {
	s, ok, err := d.Get(ctx, domain)
	if err != nil {
		return Goal{}, err
	}
	if !ok {
		return Goal{}, fmt.Errorf("%w %s: add it first with glimpse sites add %s", ErrNoSuchSite, domain, domain)
	}
	n, err := g.Normalize()
	if err != nil {
		return Goal{}, err
	}
	if len(s.Goals) >= MaxGoals {
		return Goal{}, fmt.Errorf("site %s has %d goals, the most a site may have; remove one first", domain, len(s.Goals))
	}
	s.Goals = append(s.Goals, n)
	if _, err := d.Put(ctx, s); err != nil {
		return Goal{}, err
	}
	return n, nil
}

// RemoveGoal removes the goal of site domain that matches: by name (ignoring case), or by
// its event name or page pattern. It returns the removed goal and whether there was one.
func (d *Directory) RemoveGoal(ctx context.Context, domain string, match Goal) (Goal, bool, error) {
	s, ok, err := d.Get(ctx, domain)
	if err != nil {
		return Goal{}, false, err
	}
	if !ok {
		return Goal{}, false, fmt.Errorf("%w %s (see glimpse sites list)", ErrNoSuchSite, domain)
	}
	for i, g := range s.Goals {
		if match.Name != "" && !strings.EqualFold(g.Name, strings.TrimSpace(match.Name)) ||
			match.Event != "" && g.Event != strings.TrimSpace(match.Event) ||
			match.Page != "" && g.Page != strings.TrimSpace(match.Page) {
			continue
		}
		if match.Name == "" && match.Event == "" && match.Page == "" {
			break
		}
		s.Goals = append(s.Goals[:i:i], s.Goals[i+1:]...)
		if _, err := d.Put(ctx, s); err != nil {
			return Goal{}, false, err
		}
		return g, true, nil
	}
	return Goal{}, false, nil
}
