package report

import (
	"strconv"
	"strings"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/rundir"
)

// loadMarkJSON is a change of the load, or a stop, made while the run ran
// (the live page or its API): every time chart draws it as a vertical
// line with its label.
type loadMarkJSON struct {
	T     float64 `json:"t"` // Unix seconds
	Label string  `json:"label"`
	Stop  bool    `json:"stop,omitempty"`
}

// LoadChangeLabel is the label of a change of the load on the charts,
// from the load before it (prev) to the load after it (cur), made by by:
// "→ 200 users (ui)", "→ 200 users at 20/s (ui)" when the spawn rate
// changed too, "→ 60 arrivals/s, max 500 users (api)" when max_users
// changed too. A field at 0 is not part of the model. The live page
// labels its markers with it.
func LoadChangeLabel(prev, cur rundir.LoadChange, by string) string {
	var parts []string
	if cur.ArrivalRate > 0 || cur.MaxUsers > 0 {
		if cur.ArrivalRate != prev.ArrivalRate || cur.MaxUsers == prev.MaxUsers {
			parts = append(parts, trimFloat(cur.ArrivalRate)+" arrivals/s")
		}
		if cur.MaxUsers != prev.MaxUsers {
			parts = append(parts, "max "+strconv.Itoa(cur.MaxUsers)+" users")
		}
	} else {
		s := strconv.Itoa(cur.Users) + " users"
		if cur.SpawnRate != prev.SpawnRate {
			s += " at " + trimFloat(cur.SpawnRate) + "/s"
		}
		parts = append(parts, s)
	}
	label := "→ " + strings.Join(parts, ", ")
	if by != "" {
		label += " (" + by + ")"
	}
	return label
}

// loadMarks returns the changes of meta.json's load_changes (the plan's
// entry is the start, not a change) and the stop of the timeline's
// control samples, in time order.
func loadMarks(m *rundir.Meta, timeline []stampede.Sample) []loadMarkJSON {
	var out []loadMarkJSON
	if m != nil {
		for i := 1; i < len(m.LoadChanges); i++ {
			c := m.LoadChanges[i]
			out = append(out, loadMarkJSON{T: unixSeconds(c.T), Label: LoadChangeLabel(m.LoadChanges[i-1], c, c.By)})
		}
	}
	for _, s := range timeline {
		if s.Source == controlSource && s.Info["action"] == "stop" {
			label := "stopped"
			if by := s.Info["by"]; by != "" {
				label += " (" + by + ")"
			}
			out = append(out, loadMarkJSON{T: unixSeconds(s.Time), Label: label, Stop: true})
		}
	}
	return out
}

// controlSource is the timeline source of the changes of the load and of
// a stop (runner.ControlSource): markers, not readings.
const controlSource = "control"
