package lab

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// passwordWords are the seeded passwords' stems: users share eight distinct
// passwords so seeding hashes eight passwords, not one per user.
var passwordWords = []string{"semen", "pasir", "kerikil", "besi", "bata", "kayu", "genteng", "keramik"}

// seedUser returns the i-th seeded account (i from 1).
func seedUser(i int) (username, password string) {
	w := passwordWords[(i-1)%len(passwordWords)]
	return fmt.Sprintf("user%04d", i), w + "-ahsp-" + strconv.Itoa(2000+(i-1)%len(passwordWords))
}

// WriteUsersCSV writes the first n seeded accounts as CSV with the header
// "username,password": the users file of a load scenario.
func WriteUsersCSV(w io.Writer, n int) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"username", "password"}); err != nil {
		return fmt.Errorf("users csv: %w", err)
	}
	for i := 1; i <= n; i++ {
		u, p := seedUser(i)
		if err := cw.Write([]string{u, p}); err != nil {
			return fmt.Errorf("users csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("users csv: %w", err)
	}
	return nil
}
