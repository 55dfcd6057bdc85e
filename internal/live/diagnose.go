package live

import (
	"errors"
	"math"
	"os"
	"time"

	"github.com/stampede-load/stampede/internal/diagnose"
	"github.com/stampede-load/stampede/internal/runner"
)

// diagnoseLoop diagnoses the records so far, as `stampede diagnose` would
// the run directory (its files are flushed every second), every
// DiagnoseEvery at least and never more often than every 10 times the last
// diagnosis took, so that it costs the run at most a tenth of a core. It
// stops when the run ends (End shows the final diagnosis) or at Close.
func (s *Server) diagnoseLoop() {
	wait := s.o.DiagnoseEvery
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-s.ended:
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		dir, start := s.st.dir, s.st.start
		s.mu.Unlock()
		if start.IsZero() || dir == "" {
			continue // not started yet
		}
		began := time.Now()
		at := math.Floor(began.Sub(start).Seconds())
		in, err := runner.LoadInputLive(dir)
		errText := ""
		var took time.Duration
		if err != nil {
			errText = err.Error()
			if errors.Is(err, os.ErrNotExist) {
				continue // meta.json not written yet
			}
		}
		s.mu.Lock()
		ended := s.st.end != nil
		s.mu.Unlock()
		if ended {
			return
		}
		if err == nil {
			d := diagnose.Diagnose(in)
			took = time.Since(began)
			s.mu.Lock()
			current := s.st.end == nil
			if current {
				s.st.setDiagnosis(&d, "", at, took, false)
			}
			s.mu.Unlock()
			if current && s.o.Findings != nil {
				s.o.Findings(d.Findings)
			}
		} else {
			took = time.Since(began)
			s.mu.Lock()
			if s.st.end == nil {
				s.st.setDiagnosis(nil, errText, at, took, false)
			}
			s.mu.Unlock()
		}
		wait = max(s.o.DiagnoseEvery, 10*took)
	}
}
