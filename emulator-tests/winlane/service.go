package winlane

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// serviceWait bounds each wait for the service manager: starting coffer.exe
// under wine takes a few seconds on a busy machine.
const serviceWait = 60 * time.Second

// service runs `coffer run` as a service through wine's service control
// manager against a real vault, and checks that it starts, runs a
// scheduled backup and stops cleanly:
//
//   - the local Azure stack and a control plane start on free loopback
//     ports (startVault), a vault is created and the Windows coffer
//     registers with it (its passphrase escrowed in the Key Vault emulator);
//   - a policy backs up C:\coffer-lane\src daily, and the registration's
//     schedule state says the last scheduled backup was two days ago, so
//     the scheduler owes one catch-up run as soon as it has the policy, as
//     for a machine that was off;
//   - the service is installed and started; the step waits for the vault
//     to list a completed backup job of the machine and its recovery point,
//     reads the Event Log back, stops the service with `net stop` and
//     uninstalls it.
//
// The registration is in its default folder, %ProgramData%\Coffer, as the
// service sees it. Wine 8's services.exe starts a service with an
// environment of its own making, where %ProgramData% is C:\users\Public
// (a console process sees C:\ProgramData), and without the Environment
// value of the service's key, so COFFER_CONFIG_DIR and COFFER_LOG_DIR
// (what --config-dir and --log-dir set) never reach the service
// (gaps.go: ServiceGaps). What the service needs to reach the Key Vault
// emulator goes into the system environment instead (serviceEnv).
func (st *storyState) service(ctx context.Context) (err error) {
	dataDir := filepath.Join(st.W.Prefix, "drive_c", "users", "Public", "Coffer")
	if err := os.RemoveAll(dataDir); err != nil {
		return err
	}
	v, err := startVault(ctx, filepath.Join(st.W.Dir, "vault"), st.CofferLin, st.Functions)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, v.stop()) }()
	vaultEnv := map[string]string{
		// The machine's Key Vault identity is the emulator's token, and
		// its CA is trusted explicitly (agent/vault: emulatorTransport).
		"COFFER_KEYVAULT_EMULATOR": "1",
		"SSL_CERT_FILE":            WinPath(v.stack.CACertPath),
	}
	if err := st.register(ctx, v, vaultEnv); err != nil {
		return err
	}
	p := policy.Default("UTC")
	p.Schedule.Times = []string{"03:00"}
	p.Include = []string{st.win("src")}
	if err := v.assignPolicy(ctx, laneMachine, "lane", p); err != nil {
		return err
	}
	// A scheduled backup was last made two days ago: at least one 03:00
	// has passed since, so the agent catches it up on start.
	if err := writeJSON(filepath.Join(dataDir, "schedule.json"),
		map[string]time.Time{"lastScheduled": time.Now().UTC().Add(-48 * time.Hour)}); err != nil {
		return err
	}
	unset, err := st.serviceEnv(ctx, vaultEnv)
	defer func() { err = errors.Join(err, unset()) }()
	if err != nil {
		return err
	}
	logFile := filepath.Join(dataDir, "logs", "coffer.log")
	// Keep the prefix's wineserver up for the whole step. Once the
	// service stops and no program runs, it exits, and the next wine
	// program starts a new one whose services.exe starts the service again,
	// as Windows does at boot for an automatic service.
	keep := st.W.Command(ctx, st.Wintree, "write", st.win(`keepalive.log`))
	keepIn, err := keep.StdinPipe()
	if err != nil {
		return err
	}
	keepOut, err := keep.StdoutPipe()
	if err != nil {
		return err
	}
	if err := keep.Start(); err != nil {
		return fmt.Errorf("start wintree write to keep wine up: %w", err)
	}
	defer func() {
		keepIn.Close()
		keep.Wait()
	}()
	// Its first line says wine is up, so the service manager is not started
	// by (and holding the output of) the install below.
	if line, err := bufio.NewReader(keepOut).ReadString('\n'); err != nil || strings.TrimSpace(line) != "writing" {
		return fmt.Errorf("wintree write did not start (%q, %v)", line, err)
	}
	installed := false
	defer func() {
		if installed {
			// Leave no service behind: it starts automatically with the
			// prefix's next wineserver.
			st.run(context.WithoutCancel(ctx), nil, st.CofferExe, "service", "uninstall")
		}
		if err == nil {
			err = os.RemoveAll(dataDir)
		}
	}()

	installed = true // also when install fails after creating the service
	// install checks the registration where the console's %ProgramData%
	// is not, so it is named; the service finds it by default.
	r, err := st.coffer(ctx, "", []int{0}, "service", "install",
		"--config-dir", `C:\users\Public\Coffer`, "--log-dir", `C:\users\Public\Coffer\logs`)
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	if !strings.Contains(r.stdout, "Installed and started service coffer") {
		return fmt.Errorf("service install did not say it started the service: %s", r)
	}
	// wine 8 has no delayed automatic start: install must go on with a
	// plain automatic start and say so once.
	if n := strings.Count(r.stderr, "no delayed automatic start"); n != 1 {
		return fmt.Errorf("service install warned %d times about the missing delayed start, want once: %s", n, r)
	}

	if err := st.waitStatus(ctx, "running", func(s svcStatus) bool { return s.Installed && s.Running }); err != nil {
		return err
	}
	if err := waitFileHas(ctx, logFile, `"agent started"`); err != nil {
		return fmt.Errorf("the service's coffer run: %w", err)
	}
	if err := waitFileHas(ctx, logFile, `"policy applied"`); err != nil {
		return fmt.Errorf("the service's coffer run: %w", err)
	}
	job, err := waitBackup(ctx, v, logFile)
	if err != nil {
		return err
	}
	if err := waitFileHas(ctx, logFile, `"backup finished"`); err != nil {
		return fmt.Errorf("the service's coffer run: %w", err)
	}
	events, err := st.eventLog(ctx)
	if err != nil {
		return err
	}

	r, err = st.run(ctx, nil, "net", "stop", "coffer")
	if err != nil {
		return err
	}
	if r.code != 0 {
		return fmt.Errorf("net stop coffer: %s", r)
	}
	if err := st.waitStatus(ctx, "stopped", func(s svcStatus) bool { return s.Installed && !s.Running && strings.HasPrefix(s.Detail, "stopped") }); err != nil {
		return err
	}
	// A clean stop: Stop cancelled coffer run's context.
	if err := waitFileHas(ctx, logFile, `"agent stopped"`); err != nil {
		return fmt.Errorf("the service's coffer run after net stop: %w", err)
	}

	if _, err := st.coffer(ctx, "", []int{0}, "service", "uninstall"); err != nil {
		return fmt.Errorf("service uninstall: %w", err)
	}
	installed = false
	if err := st.waitStatus(ctx, "uninstalled", func(s svcStatus) bool { return !s.Installed }); err != nil {
		return err
	}
	fmt.Fprintf(st.Out, "    scheduled backup by the service: job %s %s, point %s, %d files\n", job.ID, job.Status, job.PointID, job.Progress.FilesDone)
	fmt.Fprintf(st.Out, "    %s\n", events)
	fmt.Fprintf(st.Out, "    wine's service manager: %d gaps, worked around or reported (winlane.ServiceGaps)\n", len(ServiceGaps))
	return nil
}

// laneMachine is the Windows coffer's machine name in the lane's vault.
const laneMachine = "wine"

// register registers the Windows coffer with the vault, its registration
// in the folder the service reads.
func (st *storyState) register(ctx context.Context, v *laneVault, env map[string]string) error {
	cred, err := v.credentials(ctx)
	if err != nil {
		return err
	}
	r, err := st.run(ctx, envList(env), st.CofferExe, "register", "--credentials", WinPath(cred),
		"--name", laneMachine, "--config-dir", `C:\users\Public\Coffer`, "--json")
	if err != nil {
		return err
	}
	var reg map[string]string
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &reg) != nil || reg["machineId"] == "" {
		return fmt.Errorf("coffer register did not register the machine: %s", r)
	}
	return nil
}

// sessionEnvKey is the system environment, which wine's services.exe
// (through CreateEnvironmentBlock) does give a service, unlike the
// Environment value of the service's own key.
const sessionEnvKey = `HKLM\System\CurrentControlSet\Control\Session Manager\Environment`

// serviceEnv sets env in the system environment for the service and
// returns what removes it again. services.exe reads that environment when
// it starts, so the step then waits for the prefix's wineserver (and with
// it services.exe) to end; the next wine program starts them afresh.
func (st *storyState) serviceEnv(ctx context.Context, env map[string]string) (func() error, error) {
	var set []string
	unset := func() error {
		var errs []error
		for _, k := range set {
			r, err := st.run(context.WithoutCancel(ctx), nil, "reg", "delete", sessionEnvKey, "/v", k, "/f")
			if err == nil && r.code != 0 {
				err = errors.New(r.String())
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		r, err := st.run(ctx, nil, "reg", "add", sessionEnvKey, "/v", k, "/t", "REG_SZ", "/d", env[k], "/f")
		if err == nil && r.code != 0 {
			err = errors.New(r.String())
		}
		if err != nil {
			return unset, fmt.Errorf("set %s in the system environment: %w", k, err)
		}
		set = append(set, k)
	}
	return unset, st.W.waitServer(ctx)
}

// waitBackup polls the vault until it lists a finished backup job of the
// machine, and checks that the job completed with a recovery point the
// vault lists. Each poll is a run of the admin CLI, which paces the loop.
func waitBackup(ctx context.Context, v *laneVault, logFile string) (wire.Job, error) {
	const wait = 4 * time.Minute // a backup under wine on two busy cores
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var js []wire.Job
		if err := v.admin(ctx, &js, "jobs", v.name, "--machine", laneMachine, "--type", wire.JobBackup); err != nil {
			return wire.Job{}, err
		}
		for _, j := range js {
			switch j.Status {
			case wire.StatusInProgress:
				continue
			case wire.StatusCompleted, wire.StatusCompletedWithWarnings:
				if j.PointID == "" {
					return j, fmt.Errorf("backup job %s is %s without a recovery point", j.ID, j.Status)
				}
				var ps []wire.Point
				if err := v.admin(ctx, &ps, "points", v.name, laneMachine); err != nil {
					return j, err
				}
				if !slices.ContainsFunc(ps, func(p wire.Point) bool { return p.ID == j.PointID }) {
					return j, fmt.Errorf("backup job %s made point %s, which the vault does not list: %+v", j.ID, j.PointID, ps)
				}
				return j, nil
			default:
				b, _ := os.ReadFile(logFile)
				return j, fmt.Errorf("the service's scheduled backup (job %s) ended %s: %s %s; the service's log:\n%s",
					j.ID, j.Status, j.ErrorCode, j.Message, indent(tail(b, 15), "    "))
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b, _ := os.ReadFile(logFile)
			return wire.Job{}, fmt.Errorf("no finished backup job of the service within %v (jobs: %+v); the service's log:\n%s",
				wait, js, indent(tail(b, 15), "    "))
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// eventLog reads back what the service wrote to the Application log, with
// wevtutil as on Windows, and returns a line for the lane's output. Where
// a log is kept, it must hold the service's start and its backup. Wine 8
// keeps none: ReportEvent only traces its strings (WINEDEBUG=+eventlog),
// and its wevtutil lists no log and finds no event, so the read-back is a
// gap (ServiceGaps) and checked on Windows (docs/windows.md, item 6).
func (st *storyState) eventLog(ctx context.Context) (string, error) {
	q, err := st.run(ctx, nil, "wevtutil", "qe", "Application", "/q:*[System[Provider[@Name='coffer']]]", "/f:text", "/c:500")
	if err != nil {
		return "", err
	}
	if strings.Contains(q.stdout, "agent started") {
		if !strings.Contains(q.stdout, "backup finished") {
			return "", fmt.Errorf("the Event Log holds the service's start but not its backup: %s", q)
		}
		return "the Event Log (Application, source coffer) holds the service's start and its backup", nil
	}
	logs, err := st.run(ctx, nil, "wevtutil", "el")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(q.stdout) == "" && strings.TrimSpace(logs.stdout) == "" {
		return "Event Log not read back: wine's wevtutil lists no log and finds no event (winlane.ServiceGaps)", nil
	}
	return "", fmt.Errorf("the Event Log has no event of the service's start:\n%s%s", indent(q.String(), "    "), indent(logs.String(), "    "))
}

func envList(env map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func writeJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(name, b, 0o600)
}

type svcStatus struct {
	Installed, Running bool
	Detail             string
}

// waitStatus asks `coffer service status --json` until ok holds.
func (st *storyState) waitStatus(ctx context.Context, what string, ok func(svcStatus) bool) error {
	deadline := time.Now().Add(serviceWait)
	var last result
	for {
		r, err := st.coffer(ctx, "", []int{0}, "service", "status", "--json")
		if err != nil {
			return fmt.Errorf("service status: %w", err)
		}
		var s svcStatus
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			return fmt.Errorf("service status --json printed no status (%v): %s", err, r)
		}
		if ok(s) {
			return nil
		}
		last = r
		if time.Now().After(deadline) {
			return fmt.Errorf("the service was not %s within %v; last status: %s", what, serviceWait, last)
		}
		// Each status is a new wine process, which paces the loop.
	}
}

// waitFileHas waits until the file holds text, watching it every 100 ms.
func waitFileHas(ctx context.Context, name, text string) error {
	ctx, cancel := context.WithTimeout(ctx, serviceWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(name)
		if err == nil && strings.Contains(string(b), text) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no log %s within %v", name, serviceWait)
			}
			return fmt.Errorf("%s did not log %s within %v; it holds:\n%s", name, text, serviceWait, indent(tail(b, 15), "    "))
		case <-tick.C:
		}
	}
}
