// Command reliabilitydoc renders docs/reliability.md from the rows the
// end-to-end fault tests and the memory measurements of internal/faults
// wrote (see scripts/reliability).
//
// Usage: go run ./internal/faults/reliabilitydoc ROWS.jsonl > docs/reliability.md
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/stampede-load/stampede/internal/faults"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: reliabilitydoc ROWS.jsonl > docs/reliability.md")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "reliabilitydoc:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := faults.ReadRows(f, path)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s holds no row: did the tests run with %s set?", path, faults.RowsEnv)
	}
	w := bufio.NewWriter(os.Stdout)
	if err := faults.Markdown(w, rows); err != nil {
		return err
	}
	return w.Flush()
}
