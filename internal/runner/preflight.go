package runner

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/stampede-load/stampede/internal/load"
	"github.com/stampede-load/stampede/internal/preflight"
)

// preflightExtra is the file descriptors a run holds beside its users'
// connections and its probes' and logs': the run directory's files,
// standard streams, the poller, listeners of the live page and of
// /metrics, with room to spare.
const preflightExtra = 64

// machineNeed estimates what the run asks of this machine: every user
// alive at once (closed model: users; open model: max users) holding one
// connection to each destination of the plan, from its source address.
//
// Users whose think time is longer than the idle timeout close their
// connection while they think (load.Plan.ConnIdleTimeout): they hold one
// for a task and the idle timeout after it, out of a task and a think
// time, and close one a task.
func machineNeed(plan *load.Plan, o Options) preflight.Need {
	n := preflight.Need{
		Users:   plan.Users,
		Dials:   plan.Dials(),
		Sources: plan.LocalIPs.Used(plan.Users),
		// A probe holds a connection or two, a followed log a file and
		// an inotify descriptor.
		Extra: preflightExtra + 4*len(o.Probes.Names()) + 2*len(o.Logs),
	}
	idle := plan.ConnIdleTimeout()
	if plan.Model == load.Closed && idle > 0 && plan.ThinkMin > idle {
		cycle := (plan.ThinkMin+plan.ThinkMax)/2 + taskAllowance
		held := float64(plan.Users) * float64(idle+taskAllowance) / float64(cycle) * heldMargin
		n.Held = min(plan.Users, int(math.Ceil(held)))
		n.Closes = float64(plan.Users) / cycle.Seconds()
	}
	return n
}

// taskAllowance is the time a task is counted to take, its requests and
// their redirects, in the estimate of the connections held at once; and
// heldMargin the room left for users whose think times happen to line up.
const (
	taskAllowance = 5 * time.Second
	heldMargin    = 1.25
)

// checkMachine runs the preflight before anything of the run is written:
// the source addresses must be this machine's, and the open files, the
// ephemeral ports and the conntrack table must hold the run's connections
// (package preflight). A soft open-files limit below the need is raised to
// the hard limit, and notes says so in one line.
func checkMachine(plan *load.Plan, o Options, notes io.Writer) error {
	if o.ObserveOnly {
		return nil
	}
	need := machineNeed(plan, o)
	if err := preflight.CheckBind(need.Sources); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	sys, err := preflight.Read()
	if err != nil {
		// A /proc this code cannot read is no reason not to run.
		fmt.Fprintf(notes, "stampede: preflight skipped in part: %v\n", err)
	}
	raiseTo, err := preflight.Check(need, sys)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	if raiseTo > 0 {
		got, err := preflight.RaiseFiles()
		if err != nil {
			return fmt.Errorf("preflight: open files: this run may hold %d file descriptors, above the soft limit of %d, which could not be raised: %w (raise it with `ulimit -n`)", need.Files(), sys.Files.Cur, err)
		}
		fmt.Fprintf(notes, "stampede: open files: soft limit raised from %d to %d (the hard limit); this run may hold %d\n", sys.Files.Cur, got, need.Files())
	}
	return nil
}
