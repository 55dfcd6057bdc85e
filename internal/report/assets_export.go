package report

import (
	"github.com/stampede-load/stampede"
)

// What report.html shares with the live page (internal/live): the chart
// library, the style, and how the page draws the failure classes and the
// server-side readings, so that both pages draw the same series, in the
// same colours, on the same time axis.

// Asset returns an embedded file of the report pages: "uPlot.iife.min.js",
// "uPlot.min.css", "uPlot.LICENSE", "report.css". It returns nil for a name
// that is not embedded.
func Asset(name string) []byte {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		return nil
	}
	return b
}

// FailureClass is one of the classes of failures the failure chart draws.
type FailureClass struct {
	// Key names the class in data: "5xx", "4xx", "status_other", "content",
	// "transport", "timeout".
	Key, Label, Color string
}

// failureKeys are the keys of the failure columns, by column.
var failureKeys = map[int]string{
	col5xx:         "5xx",
	col4xx:         "4xx",
	colStatusOther: "status_other",
	colContent:     "content",
	colTransport:   "transport",
	colTimeout:     "timeout",
}

// FailureClasses returns the failure classes in the order the failure
// chart stacks them.
func FailureClasses() []FailureClass {
	out := make([]FailureClass, 0, numCols-col5xx)
	for c := col5xx; c < numCols; c++ {
		out = append(out, FailureClass{Key: failureKeys[c], Label: classLabels[c], Color: classColors[c]})
	}
	return out
}

// FailureClassOf returns the key of the class of a failed result (its
// outcome, and for a status failure its status code's class).
func FailureClassOf(r *stampede.Result) string { return failureKeys[failureColumn(r)] }

// Overlay is a server-side reading the report draws when the timeline has
// it: the samples of Source with the value Key, bucketed per second by
// their maximum (or their sum when Sum is set).
type Overlay struct {
	Chart, Source, Key, Label, Unit string
	// Axis is 0 for the left y axis, 1 for the right one.
	Axis  int
	Color string
	Sum   bool
}

// Overlays returns the readings the report draws, in page order. The
// first is the users of the throughput chart (source "generator").
func Overlays() []Overlay {
	out := make([]Overlay, len(overlays))
	for i, o := range overlays {
		out[i] = Overlay{Chart: o.chart, Source: o.source, Key: o.key, Label: o.label, Unit: o.unit, Axis: o.axis, Color: o.color, Sum: o.sum}
	}
	return out
}

// OverlayChart is a chart of server-side readings: its id (the Chart of
// its Overlays), title and axis labels.
type OverlayChart struct {
	ID, Title, Left, Right string
}

// OverlayCharts returns the server-side charts in page order.
func OverlayCharts() []OverlayChart {
	out := make([]OverlayChart, len(overlayCharts))
	for i, c := range overlayCharts {
		out[i] = OverlayChart{ID: c.id, Title: c.title, Left: c.left, Right: c.right}
	}
	return out
}
