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
	class   [256]uint8
	nclass  int
	delta   []int32 // delta[state*nclass+class] = next state
	out     [][]int // keyword ids ending at a state, fail links included
	hasOut  []bool
	nkeys   int
	maxLeng int
}

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
			ks.class[b] = uint8(n)
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
			ks.class[b] = uint8(b)
		}
		n = 256
	}
	for b := 'A'; b <= 'Z'; b++ {
		ks.class[b] = ks.class[b+'a'-'A']
	}
	ks.nclass = n

	// Trie.
	type node struct {
		next map[uint8]int32
		out  []int
	}
	nodes := []node{{next: map[uint8]int32{}}}
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
				nodes = append(nodes, node{next: map[uint8]int32{}})
				nx = int32(len(nodes) - 1)
				nodes[s].next[c] = nx
			}
			s = nx
		}
		nodes[s].out = append(nodes[s].out, id)
	}

	// Breadth-first: fail links and the full DFA.
	ns := len(nodes)
	ks.delta = make([]int32, ns*n)
	ks.out = make([][]int, ns)
	ks.hasOut = make([]bool, ns)
	fail := make([]int32, ns)
	queue := make([]int32, 0, ns)
	for c := 0; c < n; c++ {
		if nx, ok := nodes[0].next[uint8(c)]; ok {
			ks.delta[c] = nx
			queue = append(queue, nx)
		}
	}
	ks.out[0] = nodes[0].out
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		ks.out[s] = append(append([]int(nil), nodes[s].out...), ks.out[fail[s]]...)
		ks.hasOut[s] = len(ks.out[s]) > 0
		for c := 0; c < n; c++ {
			nx, ok := nodes[s].next[uint8(c)]
			if ok {
				fail[nx] = ks.delta[int(fail[s])*n+c]
				ks.delta[int(s)*n+c] = nx
				queue = append(queue, nx)
			} else {
				ks.delta[int(s)*n+c] = ks.delta[int(fail[s])*n+c]
			}
		}
	}
	return ks
}

// scan reports every keyword occurring in s by calling hit with its id (an
// id may be reported more than once). It does not allocate.
func (ks *keywordSet) scan(s string, hit func(id int)) {
	if ks == nil || len(ks.delta) == 0 {
		return
	}
	n := int32(ks.nclass)
	st := int32(0)
	delta, class, hasOut := ks.delta, &ks.class, ks.hasOut
	for i := 0; i < len(s); i++ {
		st = delta[st*n+int32(class[s[i]])]
		if hasOut[st] {
			for _, id := range ks.out[st] {
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
