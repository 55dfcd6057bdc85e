package runner

import (
	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/rundir"
	"github.com/stampede-load/stampede/internal/secret"
)

// writeClientEvidence appends to evidence.jsonl the evidence of the client
// itself since its previous call: the cookies the virtual users' browsers
// refused (load.Engine.CookieEvidence), masked with the run's secrets like
// every other event. The recorder calls it every second, before the files
// are flushed, and once more when the load is over.
func writeClientEvidence(e *load.Engine, secrets *secret.Masker, w *rundir.JSONLWriter, obs observers) {
	for _, ev := range e.CookieEvidence() {
		secrets.Evidence(&ev)
		_ = w.Write(ev)
		obs.evidence(ev)
	}
}
