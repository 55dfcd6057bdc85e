package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	stampede "github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/session"
)

// NewSegment returns meta.json's record of segment s of the whole plan,
// read from sc (nil for the quick form), every segment starting at startAt
// (zero: whenever each starts).
func NewSegment(sc *load.Scenario, whole *load.Plan, s load.Segment, startAt time.Time) *rundir.Segment {
	lf := loadFacts(whole)
	return &rundir.Segment{Index: s.Index, Count: s.Count, StartAt: startAt, Digest: ScenarioDigest(sc, whole), WholeLoad: &lf}
}

// NewObserver returns meta.json's record of the observer of a load split
// into count segments (0 when unknown): it runs the probes and log
// followers, no load.
func NewObserver(sc *load.Scenario, whole *load.Plan, count int, startAt time.Time) *rundir.Segment {
	lf := loadFacts(whole)
	return &rundir.Segment{Index: -1, Count: count, Observer: true, StartAt: startAt, Digest: ScenarioDigest(sc, whole), WholeLoad: &lf}
}

// ScenarioDigest returns "sha256:HEX" of what a run makes of its scenario:
// the scenario as read with the flags applied (sc may be nil) and the
// whole plan's load, target, hosts, timeout and users file shape (its
// header and number of rows). The segments of one split load have the same
// digest; stampede merge refuses segments whose digests differ. Secrets
// are masked before hashing, so the digest tells nothing of a password,
// and the users file's rows (which hold passwords) count by number only.
func ScenarioDigest(sc *load.Scenario, whole *load.Plan) string {
	d := struct {
		Scenario any              `json:"scenario,omitempty"`
		Target   string           `json:"target"`
		Load     rundir.LoadFacts `json:"load"`
		Timeout  time.Duration    `json:"timeout"`
		AuthOnly bool             `json:"auth_only"`
		Quick    bool             `json:"quick"`
		Hosts    session.Hosts    `json:"hosts,omitempty"`
		Header   []string         `json:"users_header,omitempty"`
		Rows     int              `json:"users_rows"`
	}{Target: stampede.Redact(whole.Target.String()), Load: loadFacts(whole), Timeout: whole.Timeout,
		AuthOnly: whole.AuthOnly, Quick: whole.Quick, Hosts: whole.Hosts, Header: whole.Header, Rows: len(whole.Rows)}
	if sc != nil {
		d.Scenario = redactScenario(sc)
	}
	b, err := json.Marshal(d)
	if err != nil {
		// A json: value JSON cannot hold (a map with number keys): fmt
		// prints maps sorted, as deterministic.
		b = fmt.Appendf(nil, "%+v", d)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
