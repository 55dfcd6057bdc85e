package host

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/stampede-load/stampede/internal/probe"
)

// cpuGroups is the host probe's CPU by process group: each reading lists
// /proc, reads every /proc/PID/stat once (and the process title of
// PostgreSQL's processes) into reused buffers, puts each process in one
// group and compares with the previous reading. The maps, buffers and
// command-name strings are kept between readings, so a reading of a host
// whose processes do not change allocates next to nothing.
//
// System calls are most of the cost (three per file: openat, read, close),
// so on a real proc filesystem the files stay open between readings, up to
// maxHeld of them, and are read again with one pread at offset 0, which
// makes procfs write them afresh. An open /proc/PID/stat stays bound to
// its process: once that exits the read fails (ESRCH) and the file is
// closed and, if the pid was reused, opened again for the new process.
type cpuGroups struct {
	self      int // stampede's own pid
	prev, cur map[int]proc
	hasPrev   bool // prev is a whole reading, taken at prevAt
	prevAt    time.Time

	dirent, stat, cmdline, path []byte
	memoTarget, memoSelf        map[int]bool
	chain                       []int

	procfs  int            // 0: not checked yet, 1: a procfs, -1: not one
	held    map[int][2]int // by pid: its stat and cmdline held open, as fd+1 (0: none)
	nheld   int            // files held open
	maxHeld int            // at most
}

// proc is what a reading keeps of one process.
type proc struct {
	ppid        int
	start       uint64 // start time: tells a reused pid from its old process
	own, reaped uint64 // utime+stime, cutime+cstime (ticks)
	comm        string
	nice        int     // its nice value: above 0, a background process
	class       string  // probe.CommGroup(comm)
	group       string  // the group this reading put it in
	title       PGTitle // what a PostgreSQL process's title says
}

func newCPUGroups(self int) *cpuGroups {
	g := &cpuGroups{
		self: self, prev: map[int]proc{}, cur: map[int]proc{},
		dirent: make([]byte, 32<<10), stat: make([]byte, 4096), cmdline: make([]byte, 512),
		memoTarget: map[int]bool{}, memoSelf: map[int]bool{}, held: map[int][2]int{},
		maxHeld: maxHeldFiles,
	}
	// Leave most descriptors to the load: a virtual user holds a socket.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		g.maxHeld = int(min(uint64(maxHeldFiles), lim.Cur/8))
	}
	return g
}

// maxHeldFiles bounds the /proc files held open between readings (a
// process's stat, and a PostgreSQL process's cmdline); the processes past
// it are read by opening and closing their files each time.
const maxHeldFiles = 2048

// procSuperMagic is the f_type of a proc filesystem (linux/magic.h).
const procSuperMagic = 0x9fa0

// close closes the files held open.
func (g *cpuGroups) close() {
	for pid, fds := range g.held {
		for _, fd := range fds {
			if fd > 0 {
				syscall.Close(fd - 1)
			}
		}
		delete(g.held, pid)
	}
	g.nheld = 0
}

// scan reads the stat of every process of the proc filesystem at dir into
// g.cur. Processes that exit during the scan are skipped.
func (g *cpuGroups) scan(dir string) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	defer syscall.Close(fd)
	if g.procfs == 0 {
		// Only procfs writes a file afresh at each read: the files of a
		// directory made to look like /proc (tests) are opened each time.
		var st syscall.Statfs_t
		g.procfs = -1
		if syscall.Fstatfs(fd, &st) == nil && st.Type == procSuperMagic {
			g.procfs = 1
		}
	}
	g.prev, g.cur = g.cur, g.prev
	clear(g.cur)
	defer g.release()
	for {
		n, err := syscall.Getdents(fd, g.dirent)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: ino (8 bytes), off (8), reclen (2),
		// type (1), then the NUL-terminated name.
		for b := g.dirent[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if pid, ok := atou(name); ok && pid > 0 && pid < 1<<31 {
				g.readProc(fd, int(pid))
			}
		}
	}
}

// readProc reads /proc/PID/stat, and a PostgreSQL process's title from
// /proc/PID/cmdline, into g.cur. The command name is kept from the
// previous reading when it did not change, so that it is not allocated
// again.
func (g *cpuGroups) readProc(dirfd, pid int) {
	fds := g.held[pid]
	defer func() {
		if fds != [2]int{} {
			g.held[pid] = fds
		}
	}()
	b, err := g.read(dirfd, pid, "/stat", &fds[0], g.stat)
	if err != nil {
		return // exited since the listing
	}
	comm, ps, err := ParseProcStat(b)
	if err != nil {
		return
	}
	c := proc{ppid: ps.PPid, start: ps.StartTime, own: ps.UTime + ps.STime, reaped: ps.CUTime + ps.CSTime, nice: ps.Nice}
	if old, ok := g.prev[pid]; ok && old.start == c.start && old.comm == string(comm) {
		c.comm, c.class = old.comm, old.class
	} else {
		c.comm = string(comm)
		c.class = probe.CommGroup(c.comm)
	}
	if c.class == probe.GroupPostgres {
		if b, err := g.read(dirfd, pid, "/cmdline", &fds[1], g.cmdline); err == nil {
			c.title = ParsePGTitle(b)
		}
	}
	g.cur[pid] = c
}

// release closes the files held for processes the last scan did not find.
func (g *cpuGroups) release() {
	for pid, fds := range g.held {
		if _, ok := g.cur[pid]; ok {
			continue
		}
		for _, fd := range fds {
			if fd > 0 {
				syscall.Close(fd - 1)
				g.nheld--
			}
		}
		delete(g.held, pid)
	}
}

// read reads the file PID+name under dirfd into buf: through the file held
// open at *held (fd+1) if any, else by opening it, and then holding it
// open when on procfs and within maxHeld.
func (g *cpuGroups) read(dirfd, pid int, name string, held *int, buf []byte) ([]byte, error) {
	if *held > 0 {
		if b, err := preadAll(*held-1, buf); err == nil {
			return b, nil
		}
		// The process exited, and its pid may be another's now.
		syscall.Close(*held - 1)
		*held = 0
		g.nheld--
	}
	fd, err := g.openAt(dirfd, pid, name)
	if err != nil {
		return nil, err
	}
	b, err := preadAll(fd, buf)
	if err != nil || g.procfs != 1 || g.nheld >= g.maxHeld {
		syscall.Close(fd)
		return b, err
	}
	*held = fd + 1
	g.nheld++
	return b, nil
}

// openAt opens the file PID+name under dirfd without allocating: the path
// is built in a reused, NUL-terminated buffer for openat(2).
func (g *cpuGroups) openAt(dirfd, pid int, name string) (int, error) {
	g.path = strconv.AppendInt(g.path[:0], int64(pid), 10)
	g.path = append(g.path, name...)
	g.path = append(g.path, 0)
	r, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&g.path[0])),
		syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// preadAll reads fd from offset 0 into buf, as much as fits: a longer file
// is cut (the fields read come first). A read shorter than asked ends it
// without another call: procfs writes a stat or cmdline file whole in one
// read, and a system call is most of the cost.
func preadAll(fd int, buf []byte) ([]byte, error) {
	n := 0
	for n < len(buf) {
		want := len(buf) - n
		m, err := syscall.Pread(fd, buf[n:], int64(n))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m <= 0 {
			break
		}
		n += m
		if m < want {
			break
		}
	}
	return buf[:n], nil
}

// classify puts every process of g.cur in its group, first match winning:
//
//  1. the target (pid target, when not 0) and its descendants: app;
//  2. stampede's own process: stampede;
//  3. PostgreSQL, PgBouncer, Redis and the proxies, by command name, even
//     when stampede (or its test) started them;
//  4. stampede's other descendants: stampede;
//  5. without a target pid, application servers and runtimes by command
//     name (probe.CommGroup): app;
//  6. anything else running at a lower priority (nice > 0): background;
//  7. anything else: other.
func (g *cpuGroups) classify(target int) {
	clear(g.memoTarget)
	clear(g.memoSelf)
	for pid, c := range g.cur {
		switch {
		case target > 0 && g.under(pid, target, g.memoTarget):
			c.group = probe.GroupApp
		case pid == g.self:
			c.group = probe.GroupStampede
		case c.class != probe.GroupApp && c.class != probe.GroupOther:
			c.group = c.class
		case g.under(pid, g.self, g.memoSelf):
			c.group = probe.GroupStampede
		case c.class == probe.GroupApp && target <= 0:
			c.group = probe.GroupApp
		case c.nice > 0:
			c.group = probe.GroupBackground
		default:
			c.group = probe.GroupOther
		}
		g.cur[pid] = c
	}
}

// under reports whether pid is root or one of its descendants in g.cur,
// remembering the answer for every process on the way up in memo.
func (g *cpuGroups) under(pid, root int, memo map[int]bool) bool {
	chain := g.chain[:0]
	in := false
	for p := pid; len(chain) < 512; {
		if p == root {
			in = true
			break
		}
		if v, ok := memo[p]; ok {
			in = v
			break
		}
		c, ok := g.cur[p]
		if !ok || c.ppid == p {
			break
		}
		chain = append(chain, p)
		p = c.ppid
	}
	for _, p := range chain {
		memo[p] = in
	}
	g.chain = chain
	return in
}

// tree returns the target's process tree (the target and its descendants:
// with a target pid, the app group) from the last scan, for TreeTicks, in
// dst.
func (g *cpuGroups) tree(dst map[int]PidStat) map[int]PidStat {
	if dst == nil {
		dst = map[int]PidStat{}
	}
	clear(dst)
	for pid, c := range g.cur {
		if c.group == probe.GroupApp {
			dst[pid] = PidStat{PPid: c.ppid, UTime: c.own, CUTime: c.reaped, StartTime: c.start}
		}
	}
	return dst
}

// topProcs is how many processes Info["cpu_top"] lists.
const topProcs = 5

// topProc is one line of Info["cpu_top"].
type topProc struct {
	pid   int
	ticks float64
}

// groupTicks is the CPU of each group between two readings, in ticks, and
// the heaviest processes.
type groupTicks struct {
	ticks   map[string]float64 // by group; a group with no process is absent
	top     [topProcs]topProc  // heaviest first; ticks 0 past the last
	app     []string           // the app group's command names, sorted
	pg      int                // PostgreSQL's processes (by command name)
	pgTitle [4]int             // PostgreSQL's processes by PGTitle
}

// ticks returns each group's CPU since the previous reading: for a process
// in both readings (same start time) the growth of its own time, for a new
// one all of it, and the CPU of processes that exited in between through
// what their parents' cutime and cstime gained beyond what was already
// counted of them, in the group of the parent that reaped them. A process
// whose parent exited too was reaped by the namespace's init (pid 1) or a
// subreaper, which cannot be told from /proc: what was counted of it is
// taken from the group of pid 1. Never less than nothing: a process reaped
// by no one (its parent ignores SIGCHLD) is lost.
//
// No process that started since the previous reading, and no group's
// reaped children, can have used more than limit ticks (the interval times
// the cores): that bounds what a process missed by the previous reading,
// or reaped by another group's subreaper, can add. Without a previous
// reading only the groups present, the app names and the titles are set.
func (g *cpuGroups) ticks(limit float64) groupTicks {
	var gt groupTicks
	gt.ticks = make(map[string]float64, len(probe.Groups))
	var reaped, counted [16]float64 // by index in probe.Groups
	idx := func(group string) int { return slices.Index(probe.Groups, group) }
	for pid, c := range g.cur {
		i := idx(c.group)
		gt.ticks[c.group] += 0
		if c.class == probe.GroupPostgres {
			gt.pg++
			gt.pgTitle[c.title]++
		}
		if c.group == probe.GroupApp && !slices.Contains(gt.app, c.comm) {
			gt.app = append(gt.app, c.comm)
		}
		if !g.hasPrev {
			continue
		}
		var own, rep float64
		if p, ok := g.prev[pid]; ok && p.start == c.start {
			own, rep = float64(sub(c.own, p.own)), float64(sub(c.reaped, p.reaped))
		} else {
			own, rep = min(float64(c.own), limit), min(float64(c.reaped), limit)
		}
		gt.ticks[c.group] += own
		reaped[i] += rep
		gt.addTop(pid, own)
	}
	if !g.hasPrev {
		slices.Sort(gt.app)
		return gt
	}
	orphans := 0.0
	for pid, p := range g.prev {
		if c, ok := g.cur[pid]; ok && c.start == p.start {
			continue
		}
		// Its parent reaped it if the parent is still the process it was.
		if parent, ok := g.cur[p.ppid]; ok && g.prev[p.ppid].start == parent.start {
			counted[idx(parent.group)] += float64(p.own + p.reaped)
		} else {
			orphans += float64(p.own + p.reaped)
		}
	}
	initGroup := probe.GroupOther
	if c, ok := g.cur[1]; ok {
		initGroup = c.group
	}
	counted[idx(initGroup)] += orphans
	for i, group := range probe.Groups {
		if _, ok := gt.ticks[group]; ok {
			gt.ticks[group] += min(max(reaped[i]-counted[i], 0), limit)
		}
	}
	slices.Sort(gt.app)
	return gt
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// addTop keeps the topProcs heaviest processes, heaviest first.
func (gt *groupTicks) addTop(pid int, ticks float64) {
	if ticks == 0 || ticks <= gt.top[topProcs-1].ticks {
		return
	}
	i := topProcs - 1
	for i > 0 && gt.top[i-1].ticks < ticks {
		gt.top[i] = gt.top[i-1]
		i--
	}
	gt.top[i] = topProc{pid: pid, ticks: ticks}
}

// topLines formats Info["cpu_top"]: "PID<TAB>COMM<TAB>GROUP<TAB>CPU_PCT"
// per process, heaviest first, CPU in percent of one core with one
// decimal. Command names only, never command lines: those may carry
// secrets.
func (g *cpuGroups) topLines(gt groupTicks, secs float64) string {
	var b strings.Builder
	for _, t := range gt.top {
		if t.ticks == 0 {
			break
		}
		c := g.cur[t.pid]
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strconv.Itoa(t.pid))
		b.WriteByte('\t')
		b.WriteString(printable(c.comm))
		b.WriteByte('\t')
		b.WriteString(c.group)
		b.WriteByte('\t')
		b.WriteString(strconv.FormatFloat(pct(t.ticks, secs), 'f', 1, 64))
	}
	return b.String()
}

// pct turns ticks over secs seconds into percent of one core.
func pct(ticks, secs float64) float64 { return 100 * ticks / clockTicks / secs }

// printable returns s with control characters (a tab or a newline in a
// command name would break a line of Info["cpu_top"]) replaced by '?'.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '?'
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// ParseProcStat parses /proc/PID/stat without allocating: the command name
// (field 2, in parentheses, which it may itself contain along with spaces:
// it runs from the first '(' to the last ')'), aliasing b, and the fields
// of PidStat. Fields past stime (cutime, cstime, starttime) are zero when
// missing or malformed.
func ParseProcStat(b []byte) (comm []byte, ps PidStat, err error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return nil, PidStat{}, fmt.Errorf("pid stat: %w", errFormat)
	}
	// After ')', counting from 0: state 0, ppid 1, utime 11, stime 12,
	// cutime 13, cstime 14, nice 16, starttime 19.
	var f [20][]byte
	n := 0
	for rest := b[end+1:]; n < len(f); n++ {
		i := 0
		for i < len(rest) && rest[i] <= ' ' {
			i++
		}
		j := i
		for j < len(rest) && rest[j] > ' ' {
			j++
		}
		if i == j {
			break
		}
		f[n], rest = rest[i:j], rest[j:]
	}
	if n < 13 {
		return nil, PidStat{}, fmt.Errorf("pid stat: %w", errFormat)
	}
	pp, ok1 := atou(f[1])
	u, ok2 := atou(f[11])
	s, ok3 := atou(f[12])
	// Real tick counts are far below 2^53 (28 million years at 100 Hz); a
	// larger one is not a real line, and could make the sums overflow.
	if !ok1 || !ok2 || !ok3 || pp >= 1<<31 || u > 1<<53 || s > 1<<53 {
		return nil, PidStat{}, fmt.Errorf("pid stat: %w", errFormat)
	}
	ps = PidStat{PPid: int(pp), UTime: u, STime: s}
	// cutime and cstime are signed in the kernel's format; never negative
	// in practice.
	if n >= 15 {
		cu, ok1 := atou(f[13])
		cs, ok2 := atou(f[14])
		if ok1 && ok2 && cu <= 1<<53 && cs <= 1<<53 {
			ps.CUTime, ps.CSTime = cu, cs
		}
	}
	if n >= 17 {
		nice, neg := f[16], false
		if len(nice) > 0 && nice[0] == '-' {
			nice, neg = nice[1:], true
		}
		if v, ok := atou(nice); ok && v <= 20 {
			ps.Nice = int(v)
			if neg {
				ps.Nice = -ps.Nice
			}
		}
	}
	if n >= 20 {
		ps.StartTime, _ = atou(f[19])
	}
	return b[open+1 : end], ps, nil
}

// atou parses a decimal number of at most 19 digits (no sign).
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// PGTitle is what a PostgreSQL process's title (its /proc/PID/cmdline, which
// PostgreSQL overwrites) says about it.
type PGTitle uint8

const (
	// NotBackend is any process that is not a client backend: the
	// postmaster, the checkpointer, a walsender, an autovacuum worker.
	NotBackend PGTitle = iota
	// BackendNoActivity is a client backend whose title shows no activity
	// (update_process_title is off).
	BackendNoActivity
	// BackendIdle is a client backend waiting for its client: "idle",
	// "idle in transaction", "idle in transaction (aborted)".
	BackendIdle
	// BackendBusy is a client backend doing something else: running a
	// statement ("SELECT", "UPDATE waiting"), authenticating, starting.
	BackendBusy
)

// ParsePGTitle reads a PostgreSQL process title, "postgres: [CLUSTER: ]USER
// DATABASE HOST(PORT) ACTIVITY" for a client backend (HOST(PORT) is
// "[local]" on a Unix socket), without allocating. The title ends at the
// first NUL.
func ParsePGTitle(b []byte) PGTitle {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	rest, ok := bytes.CutPrefix(b, []byte("postgres: "))
	if !ok {
		return NotBackend
	}
	for k, i := 0, 0; ; k++ {
		for i < len(rest) && rest[i] == ' ' {
			i++
		}
		j := i
		for j < len(rest) && rest[j] != ' ' {
			j++
		}
		if i == j {
			return NotBackend
		}
		tok := rest[i:j]
		i = j
		switch {
		case k == 0 && tok[len(tok)-1] == ':':
			k = -1 // the cluster name: the user comes next
		case k == 0 && string(tok) == "walsender":
			return NotBackend // "walsender USER HOST(PORT) streaming ..."
		case k >= 2 && isPGHost(tok):
			act := bytes.TrimSpace(rest[i:])
			switch {
			case len(act) == 0:
				return BackendNoActivity
			case bytes.HasPrefix(act, []byte("idle")):
				return BackendIdle
			}
			return BackendBusy
		}
	}
}

// isPGHost reports whether a title's word is a client's address: "[local]"
// or HOST(PORT).
func isPGHost(tok []byte) bool {
	if string(tok) == "[local]" {
		return true
	}
	open := bytes.LastIndexByte(tok, '(')
	if open <= 0 || tok[len(tok)-1] != ')' {
		return false
	}
	_, ok := atou(tok[open+1 : len(tok)-1])
	return ok
}
