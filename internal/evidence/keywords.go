package evidence

// keywordSet finds, in one pass over a text, which of a fixed set of keywords
// occur in it, ignoring ASCII case. It is an Aho-Corasick automaton compiled
// to a DFA over byte classes: bytes that occur in no keyword share class 0,
// and an upper-case letter shares the class of its lower-case twin, so the
// transition table stays small (states × classes) and the scan costs one
// table lookup per byte. It is the prefilter that keeps regular expressions
// off the hot path: a signature's regex runs only on a text holding its
// keyword.
type keywordSet struct {
	class  [256]uint32
	nclass int
	// delta[state*nclass+class] is the next state, pre-multiplied by
	// nclass (so the scan adds a class without multiplying), with outFlag
	// set when keywords end there.
	delta   []uint32
	out     [][]int // by state number: keyword ids ending there, fail links included
	nkeys   int
	maxLeng int
}

// outFlag marks, in delta, a state where keywords end.
const outFlag = 1 << 31

// newKeywordSet compiles keys (matched case-insensitively). Empty keys are
// never reported.
func newKeywordSet(keys []string) *keywordSet {
	ks := &keywordSet{nkeys: len(keys)}
	// Byte classes.
	var used [256]bool
	for _, k := range keys {
		for i := 0; i < len(k); i++ {
			used[lower(k[i])] = true
		}
	}
	n := 1
	for b := 0; b < 256; b++ {
		if used[b] {
			ks.class[b] = uint32(n)
			n++
			if n > 255 {
				// More distinct bytes than classes: fall back to
				// identity classes (still correct, a larger table).
				break
			}
		}
	}
	if n > 255 {
		for b := 0; b < 256; b++ {
			ks.class[b] = uint32(b)
		}
		n = 256
	}
	for b := 'A'; b <= 'Z'; b++ {
		ks.class[b] = ks.class[b+'a'-'A']
	}
	ks.nclass = n

	// Trie.
	type node struct {
		next map[uint32]int32
		out  []int
	}
	nodes := []node{{next: map[uint32]int32{}}}
	for id, k := range keys {
		if k == "" {
			continue
		}
		if len(k) > ks.maxLeng {
			ks.maxLeng = len(k)
		}
		s := int32(0)
		for i := 0; i < len(k); i++ {
			c := ks.class[lower(k[i])]
			nx, ok := nodes[s].next[c]
			if !ok {
				nodes = append(nodes, node{next: map[uint32]int32{}})
				nx = int32(len(nodes) - 1)
				nodes[s].next[c] = nx
			}
			s = nx
		}
		nodes[s].out = append(nodes[s].out, id)
	}

	// Renumber the states breadth-first, so the shallow states, where the
	// scan spends most of its time, share a few cache lines of the table.
	order := make([]int32, 0, len(nodes))
	order = append(order, 0)
	for i := 0; i < len(order); i++ {
		nd := nodes[order[i]]
		for c := 0; c < n; c++ {
			if nx, ok := nd.next[uint32(c)]; ok {
				order = append(order, nx)
			}
		}
	}
	renum := make([]int32, len(nodes))
	for newID, old := range order {
		renum[old] = int32(newID)
	}
	bfs := make([]node, len(nodes))
	for old, nd := range nodes {
		next := make(map[uint32]int32, len(nd.next))
		for c, nx := range nd.next {
			next[c] = renum[nx]
		}
		bfs[renum[old]] = node{next: next, out: nd.out}
	}
	nodes = bfs

	// Breadth-first: fail links and the full DFA (plain state numbers
	// first, encoded below).
	ns := len(nodes)
	delta := make([]int32, ns*n)
	ks.out = make([][]int, ns)
	fail := make([]int32, ns)
	queue := make([]int32, 0, ns)
	for c := 0; c < n; c++ {
		if nx, ok := nodes[0].next[uint32(c)]; ok {
			delta[c] = nx
			queue = append(queue, nx)
		}
	}
	ks.out[0] = nodes[0].out
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		ks.out[s] = append(append([]int(nil), nodes[s].out...), ks.out[fail[s]]...)
		for c := 0; c < n; c++ {
			nx, ok := nodes[s].next[uint32(c)]
			if ok {
				fail[nx] = delta[int(fail[s])*n+c]
				delta[int(s)*n+c] = nx
				queue = append(queue, nx)
			} else {
				delta[int(s)*n+c] = delta[int(fail[s])*n+c]
			}
		}
	}
	ks.delta = make([]uint32, len(delta))
	for i, nx := range delta {
		v := uint32(nx) * uint32(n)
		if len(ks.out[nx]) > 0 {
			v |= outFlag
		}
		ks.delta[i] = v
	}
	return ks
}

// scan reports every keyword occurring in s by calling hit with its id (an
// id may be reported more than once). It does not allocate.
func (ks *keywordSet) scan(s string, hit func(id int)) {
	if ks == nil || len(ks.delta) == 0 {
		return
	}
	n := uint32(ks.nclass)
	st := uint32(0)
	delta, class := ks.delta, &ks.class
	for i := 0; i < len(s); i++ {
		st = delta[st+class[s[i]]]
		if st&outFlag != 0 {
			st &^= outFlag
			for _, id := range ks.out[st/n] {
				hit(id)
			}
		}
	}
}

// lower folds an ASCII upper-case letter.
func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
