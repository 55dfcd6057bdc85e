package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDiagnoseHostile runs "stampede diagnose" on damaged run directories
// and Locust files (the corpora of internal/runner and internal/locust):
// a run killed mid-write is diagnosed, a damaged one is exit status 1 with
// an error naming the file and the line, always within a minute.
func TestDiagnoseHostile(t *testing.T) {
	base := "../../internal/runner/testdata/hostile/rundir"
	files, err := filepath.Glob(filepath.Join(base, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no run directory in %s", base)
	}
	copyRun := func(t *testing.T, damage func(dir string)) string {
		dir := t.TempDir()
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
		}
		damage(dir)
		return dir
	}
	run := func(t *testing.T, args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("stampede %s did not finish in a minute", strings.Join(args, " "))
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	locust := "../../internal/locust/testdata/hostile/"
	reqs, err := os.ReadFile(filepath.Join(base, "requests.csv"))
	if err != nil {
		t.Fatal(err)
	}
	garbageLine := fmt.Sprintf("requests.csv:%d: ", bytes.Count(reqs, []byte("\n"))+1)
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
		code int
		want string
	}{
		{"killed mid-write", func(t *testing.T) []string {
			return []string{"diagnose", copyRun(t, func(dir string) {
				p := filepath.Join(dir, "requests.csv")
				b, _ := os.ReadFile(p)
				os.WriteFile(p, b[:len(b)-7], 0o644)
				os.Remove(filepath.Join(dir, "summary.json"))
			})}
		}, 0, "Diagnosis"},
		{"empty meta.json", func(t *testing.T) []string {
			return []string{"diagnose", copyRun(t, func(dir string) { os.WriteFile(filepath.Join(dir, "meta.json"), nil, 0o644) })}
		}, 1, "meta.json is empty"},
		{"garbage in requests.csv", func(t *testing.T) []string {
			return []string{"diagnose", "--format", "json", copyRun(t, func(dir string) {
				f, _ := os.OpenFile(filepath.Join(dir, "requests.csv"), os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString("\xff\xfe\x00 not a request\n1,1,/,GET,200,5,0,0,2,ok,,\n")
				f.Close()
			})}
		}, 1, garbageLine},
		{"not a run directory", func(t *testing.T) []string { return []string{"diagnose", t.TempDir()} }, 1, "is not a run directory (no meta.json)"},
		{"Locust CSVs cut short", func(t *testing.T) []string {
			return []string{"diagnose", "--locust", locust + "truncated-history"}
		}, 0, "Diagnosis"},
		{"Locust CSVs in CRLF", func(t *testing.T) []string { return []string{"diagnose", "--locust", locust + "crlf"} }, 0, "Diagnosis"},
		{"Locust 0.x CSVs", func(t *testing.T) []string { return []string{"diagnose", "--locust", locust + "locust0"} }, 1,
			`locust0_stats.csv: line 1: no column "Failures/s"`},
		{"binary garbage as Locust CSVs", func(t *testing.T) []string { return []string{"diagnose", "--locust", locust + "binary"} }, 1,
			`binary_stats.csv: line 1: no column "Type"`},
		{"a log that is a directory", func(t *testing.T) []string {
			return []string{"diagnose", "--locust", locust + "lf", "--log", "app=" + t.TempDir()}
		}, 1, "is a directory"},
		{"logs of garbage", func(t *testing.T) []string {
			return []string{"diagnose", "--locust", locust + "lf", "--log", "app=../../internal/evidence/testdata/hostile/binary-garbage.log",
				"--log", "utf8=../../internal/evidence/testdata/hostile/invalid-utf8.log"}
		}, 0, "Diagnosis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, tc.args(t)...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d, with %q in:\n%s", code, tc.code, tc.want, out)
			}
			if code == 1 && !strings.HasPrefix(out, "Error: ") {
				t.Errorf("an error not printed as one:\n%s", out)
			}
		})
	}
}
