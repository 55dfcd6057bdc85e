package evidence

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stampede-load/stampede"
)

// Tally counts the events of one signature (or of none: the unclassified
// ones).
type Tally struct {
	// Signature and Class are the signature's; empty for the unclassified.
	Signature, Class string
	// Count is the number of events.
	Count int
	// First and Last are the earliest and latest event times (events
	// without a time are left out).
	First, Last time.Time
	// Examples are the first few events.
	Examples []stampede.Evidence
}

// SourceTally counts the events of one log.
type SourceTally struct {
	Source     string
	Events     int
	Classified int
}

// Summary is what a set of evidence amounts to: counts per log, per
// signature and per class, with examples.
type Summary struct {
	Sources []SourceTally
	// Signatures are ordered by class, then by count (most first), then id.
	Signatures []Tally
	// Classes are the totals per class, ordered by count then name.
	Classes []Tally
	// Unclassified counts the events no signature matched.
	Unclassified Tally
}

// Summarize tallies evs, keeping up to examples events per signature.
func Summarize(evs []stampede.Evidence, examples int) Summary {
	var s Summary
	sources := map[string]*SourceTally{}
	sigs := map[string]*Tally{}
	classes := map[string]*Tally{}
	add := func(t *Tally, ev stampede.Evidence) {
		t.Count++
		if !ev.Time.IsZero() {
			if t.First.IsZero() || ev.Time.Before(t.First) {
				t.First = ev.Time
			}
			if ev.Time.After(t.Last) {
				t.Last = ev.Time
			}
		}
		if len(t.Examples) < examples {
			t.Examples = append(t.Examples, ev)
		}
	}
	for _, ev := range evs {
		st := sources[ev.Source]
		if st == nil {
			st = &SourceTally{Source: ev.Source}
			sources[ev.Source] = st
		}
		st.Events++
		if ev.Signature == "" {
			add(&s.Unclassified, ev)
			continue
		}
		st.Classified++
		t := sigs[ev.Signature]
		if t == nil {
			t = &Tally{Signature: ev.Signature, Class: ev.Class}
			sigs[ev.Signature] = t
		}
		add(t, ev)
		c := classes[ev.Class]
		if c == nil {
			c = &Tally{Class: ev.Class}
			classes[ev.Class] = c
		}
		add(c, ev)
	}
	for _, st := range sources {
		s.Sources = append(s.Sources, *st)
	}
	sort.Slice(s.Sources, func(i, j int) bool { return s.Sources[i].Source < s.Sources[j].Source })
	for _, c := range classes {
		s.Classes = append(s.Classes, *c)
	}
	sort.Slice(s.Classes, func(i, j int) bool {
		a, b := s.Classes[i], s.Classes[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Class < b.Class
	})
	rank := map[string]int{}
	for i, c := range s.Classes {
		rank[c.Class] = i
	}
	for _, t := range sigs {
		s.Signatures = append(s.Signatures, *t)
	}
	sort.Slice(s.Signatures, func(i, j int) bool {
		a, b := s.Signatures[i], s.Signatures[j]
		if rank[a.Class] != rank[b.Class] {
			return rank[a.Class] < rank[b.Class]
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Signature < b.Signature
	})
	return s
}

// WriteText prints the summary for people: the logs, the classes found
// with their signatures (count, first and last time, examples with
// file:line), then the unclassified events worth a look.
func (s Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tEVENTS\tCLASSIFIED")
	for _, st := range s.Sources {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", st.Source, st.Events, st.Classified)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Classes) == 0 {
		fmt.Fprintln(w, "\nNo known signature found.")
	}
	for _, c := range s.Classes {
		fmt.Fprintf(w, "\n%s: %d event(s)%s\n", c.Class, c.Count, span(c))
		for _, t := range s.Signatures {
			if t.Class != c.Class {
				continue
			}
			fmt.Fprintf(w, "  %-44s %6d%s\n", t.Signature, t.Count, span(t))
			for _, ev := range t.Examples {
				fmt.Fprintf(w, "      %s  %s\n", ev.Ref, headline(ev))
			}
		}
	}
	if u := s.Unclassified; u.Count > 0 {
		fmt.Fprintf(w, "\nunclassified (warnings, errors, stack traces): %d event(s)%s\n", u.Count, span(u))
		for _, ev := range u.Examples {
			fmt.Fprintf(w, "      %s  %s\n", ev.Ref, headline(ev))
		}
	}
	return nil
}

// span formats a tally's first and last times.
func span(t Tally) string {
	if t.First.IsZero() {
		return ""
	}
	const layout = "2006-01-02 15:04:05.000"
	if t.First.Equal(t.Last) {
		return "  at " + t.First.Format(layout)
	}
	return "  from " + t.First.Format(layout) + " to " + t.Last.Format(layout)
}

// headline is an event's message, with its exception when it has one,
// cut to one line of reasonable length.
func headline(ev stampede.Evidence) string {
	s := ev.Message
	if ev.Exception != "" && ev.Exception != ev.Message {
		s += " → " + ev.Exception
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > 160 {
		s = string(r[:157]) + "..."
	}
	return s
}
