package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The tests run this test binary again as mapperd (MAPPERD_TEST_MAIN).
// The peer itself is tested in peers/mapserver, as processes too.
func TestMain(m *testing.M) {
	if os.Getenv("MAPPERD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(args ...string) (string, int) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAPPERD_TEST_MAIN=1")
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

func TestHelp(t *testing.T) {
	out, code := run("--help")
	if code != 0 {
		t.Fatalf("--help exits %d:\n%s", code, out)
	}
	for _, want := range []string{"Usage: mapperd", "-data-port", "-map-port", "-owner", "-keep-locks", "-segment", "SIGTERM", "MAPR/MAPW"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q:\n%s", want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--port", "3"}, "--data-port: required"},
		{[]string{"--data-port", "1"}, "--port: required"},
		{[]string{"--port", "3", "--data-port", "1", "extra"}, `unexpected argument "extra"`},
	} {
		out, code := run(c.args...)
		if code != 2 || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("mapperd %q: exit %d, output %q; want exit 2 and one line with %q", c.args, code, out, c.want)
		}
	}
	out, code := run("--port", "3", "--data-port", "1", "--segment", "no-such-segment", "--segment-dir", t.TempDir())
	if code != 1 || !strings.Contains(out, "xseg create") {
		t.Errorf("missing segment: exit %d, %q", code, out)
	}
}
