package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/smtp"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
)

// A demoStep is one numbered part of the demo. It returns one or two plain
// lines (separated by "\n") saying what it showed.
type demoStep struct {
	title string
	run   func(ctx context.Context, d *demo) (string, error)
}

// demoConfig says where the demo keeps its files and finds Coffer.
type demoConfig struct {
	// StateDir holds the stack's logs and mail, the story's files and the
	// transcript of every command; it is emptied first and kept afterwards.
	StateDir string
	// Bin is the folder with the coffer and coffer-functions executables;
	// only the story's steps need it.
	Bin string
}

// defaultSteps is the whole demo: the stack, then Coffer's story on it.
func defaultSteps() []demoStep {
	return append([]demoStep{stackStep()}, storySteps()...)
}

// stackStep checks each emulator answers, through the same Azure SDK
// clients Coffer uses against real Azure.
func stackStep() demoStep {
	return demoStep{"The local Azure stack is up", func(ctx context.Context, d *demo) (string, error) {
		for _, c := range []struct {
			what string
			run  func(context.Context, *stack.Stack) (string, error)
		}{
			{"Blob storage (Azurite)", demoBlob},
			{"Table storage (Azurite)", demoTable},
			{"Service Bus (emulator)", demoServiceBus},
			{"Key Vault (emulator)", demoKeyVault},
			{"Email (SMTP sink)", demoMail},
		} {
			msg, err := c.run(ctx, d.Stack)
			if err != nil {
				return "", fmt.Errorf("%s: %w", c.what, err)
			}
			d.logf("stack check %s: %s", c.what, msg)
		}
		a := d.Stack.Addrs()
		return fmt.Sprintf("Azurite (blob %s, table %s), Service Bus %s, Key Vault %s, SMTP sink %s.\n"+
			"Each answered through the Azure SDK: a blob, a table row, a queue message, a secret and an email went in and came back.",
			a["blob"], a["table"], a["servicebus"], a["keyvault"], a["smtp"]), nil
	}}
}

func newDemo(stateDir *string) *cobra.Command {
	var bin string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Start the local stack, run Coffer's whole story on it with the real binaries, and stop it all",
		Long: `Start a private local stack, check each emulator answers, then run Coffer's
story with the coffer and coffer-functions executables found in --bin: a
vault, a registered agent, backups, a byte-for-byte restore, a failed backup
and its alert email, the vault portal's overview and machine page (saved as
PNGs in the demo's folder when Chromium is installed), deleting and
undeleting data with a PIN, and the purge 14 days later. Everything started
is stopped and checked gone, also when a step fails; the exit status is
non-zero if any step fails.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			bin, err := binDir(bin)
			if err != nil {
				return err
			}
			if err := checkBinaries(bin, "coffer", "coffer-functions"); err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			_, err = runDemo(ctx, c.OutOrStdout(), demoConfig{StateDir: filepath.Join(*stateDir, "demo"), Bin: bin}, defaultSteps())
			return err
		},
	}
	c.Flags().StringVar(&bin, "bin", "", "folder holding coffer and coffer-functions (default: devstack's own folder)")
	return c
}

// demoReport records what the demo ran, so a test can check it is all gone.
type demoReport struct {
	PIDs  map[string]int
	Addrs map[string]string
}

// runDemo starts a private stack (never the one `make dev-up` keeps) in
// cfg.StateDir, runs the steps in order until one fails, and always stops
// every process the steps started and the stack, and checks that no process
// or port is left. The folder is emptied first and kept afterwards, so its
// logs, captured mail and command transcript can be read.
func runDemo(ctx context.Context, out io.Writer, cfg demoConfig, steps []demoStep) (rep demoReport, err error) {
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return rep, err
	}
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		return rep, fmt.Errorf("clear the demo's folder: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return rep, fmt.Errorf("create the demo's folder: %w", err)
	}
	transcript := filepath.Join(cfg.StateDir, transcriptFile)
	logf, err := os.Create(transcript)
	if err != nil {
		return rep, fmt.Errorf("create the demo's transcript: %w", err)
	}
	defer logf.Close()

	fmt.Fprintln(out, "Coffer demo: the whole story on the local Azure stack")
	fmt.Fprintln(out, "Starting Azurite (Blob, Queue, Table), the Service Bus and Key Vault emulators and an SMTP sink on free loopback ports…")
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := stack.Start(startCtx, stack.Options{StateDir: cfg.StateDir, MailPage: true})
	cancel()
	if err != nil {
		return rep, fmt.Errorf("start the local stack: %w", err)
	}
	d := &demo{Stack: s, Bin: cfg.Bin, Dir: filepath.Join(cfg.StateDir, "story"), Logs: cfg.StateDir, Out: cfg.StateDir, log: logf}
	rep.PIDs, rep.Addrs = s.PIDs(), s.Addrs()
	defer func() {
		fmt.Fprintln(out, "==> Stopping everything the demo started")
		// Coffer's processes first: they use the emulators.
		for name, c := range d.children() {
			rep.PIDs[name], rep.Addrs[name] = c.pid, c.addr
		}
		d.mu.Lock()
		maps.Copy(rep.PIDs, d.other)
		d.mu.Unlock()
		stopErr := errors.Join(d.stopChildren(), s.Stop(), stack.CheckGone(rep.PIDs, rep.Addrs))
		if stopErr != nil {
			fmt.Fprintf(out, "    FAILED: %s\n", strings.ReplaceAll(stopErr.Error(), "\n", "\n    "))
			err = errors.Join(err, stopErr)
			return
		}
		fmt.Fprintf(out, "    stopped %s; no port is left open\n", describePIDs(rep.PIDs))
		fmt.Fprintf(out, "    every command and its output: %s\n", transcript)
		if err == nil {
			fmt.Fprintf(out, "Demo finished: all %d steps passed.\n", len(steps))
		}
	}()

	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return rep, err
	}
	for i, st := range steps {
		fmt.Fprintf(out, "==> %d/%d %s\n", i+1, len(steps), st.title)
		d.logf("==> %d/%d %s", i+1, len(steps), st.title)
		stepCtx, cancel := context.WithTimeout(ctx, stepTimeout)
		msg, err := st.run(stepCtx, d)
		cancel()
		if err != nil {
			fmt.Fprintf(out, "    FAILED: %s\n", strings.ReplaceAll(err.Error(), "\n", "\n    "))
			return rep, fmt.Errorf("demo step %d %q failed: %w", i+1, st.title, err)
		}
		for _, line := range strings.Split(msg, "\n") {
			fmt.Fprintf(out, "    %s\n", line)
		}
	}
	return rep, nil
}

// stepTimeout bounds one step; the slowest waits for an email.
const stepTimeout = 2 * time.Minute

// transcriptFile is where the demo writes each command it ran and its output.
const transcriptFile = "commands.log"

func describePIDs(pids map[string]int) string {
	var b bytes.Buffer
	for i, k := range slices.Sorted(maps.Keys(pids)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (pid %d)", k, pids[k])
	}
	return b.String()
}

func demoBlob(ctx context.Context, s *stack.Stack) (string, error) {
	c, err := azblob.NewClientFromConnectionString(s.Azurite.ConnectionString(), nil)
	if err != nil {
		return "", err
	}
	if _, err := c.CreateContainer(ctx, "demo", nil); err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	want := []byte("Hello from Coffer: this blob went to Azurite and came back.\n")
	if _, err := c.UploadBuffer(ctx, "demo", "hello.txt", want, nil); err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	resp, err := c.DownloadStream(ctx, "demo", "hello.txt", nil)
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if !bytes.Equal(got, want) {
		return "", fmt.Errorf("read back %q, wrote %q", got, want)
	}
	return fmt.Sprintf("wrote demo/hello.txt (%d bytes) and read the same bytes back", len(got)), nil
}

func demoTable(ctx context.Context, s *stack.Stack) (string, error) {
	svc, err := aztables.NewServiceClientFromConnectionString(s.Azurite.ConnectionString(), nil)
	if err != nil {
		return "", err
	}
	if _, err := svc.CreateTable(ctx, "demojobs", nil); err != nil {
		return "", fmt.Errorf("create table: %w", err)
	}
	t := svc.NewClient("demojobs")
	row, _ := json.Marshal(map[string]string{"PartitionKey": "branch-office", "RowKey": "job-1", "Status": "Completed"})
	if _, err := t.AddEntity(ctx, row, nil); err != nil {
		return "", fmt.Errorf("add row: %w", err)
	}
	got, err := t.GetEntity(ctx, "branch-office", "job-1", nil)
	if err != nil {
		return "", fmt.Errorf("read row: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(got.Value, &m); err != nil || m["Status"] != "Completed" {
		return "", fmt.Errorf("read back %s", got.Value)
	}
	return "added row branch-office/job-1 {Status: Completed} to table demojobs and read it back", nil
}

func demoServiceBus(ctx context.Context, s *stack.Stack) (string, error) {
	c, err := azservicebus.NewClientFromConnectionString(s.ServiceBus.ConnectionString(), nil)
	if err != nil {
		return "", err
	}
	defer c.Close(context.Background())
	snd, err := c.NewSender("alerts", nil)
	if err != nil {
		return "", err
	}
	defer snd.Close(context.Background())
	subject := "BackupFailed"
	if err := snd.SendMessage(ctx, &azservicebus.Message{Subject: &subject, Body: []byte(`{"machine":"branch-srv01"}`)}, nil); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	rcv, err := c.NewReceiverForQueue("alerts", nil)
	if err != nil {
		return "", err
	}
	defer rcv.Close(context.Background())
	msgs, err := rcv.ReceiveMessages(ctx, 1, nil)
	if err != nil {
		return "", fmt.Errorf("receive: %w", err)
	}
	if len(msgs) != 1 || string(msgs[0].Body) != `{"machine":"branch-srv01"}` {
		return "", fmt.Errorf("received %d messages, not the one sent", len(msgs))
	}
	if err := rcv.CompleteMessage(ctx, msgs[0], nil); err != nil {
		return "", fmt.Errorf("complete: %w", err)
	}
	return "sent a BackupFailed message to queue alerts, received it with a lock and completed it", nil
}

func demoKeyVault(ctx context.Context, s *stack.Stack) (string, error) {
	c, err := azsecrets.NewClient(s.KeyVault.URL(), keyvault.Credential(), s.KeyVault.ClientOptions())
	if err != nil {
		return "", err
	}
	want := "correct horse battery staple"
	set, err := c.SetSecret(ctx, "machine-branch-srv01", azsecrets.SetSecretParameters{Value: &want}, nil)
	if err != nil {
		return "", fmt.Errorf("set secret: %w", err)
	}
	got, err := c.GetSecret(ctx, "machine-branch-srv01", "", nil)
	if err != nil {
		return "", fmt.Errorf("get secret: %w", err)
	}
	if got.Value == nil || *got.Value != want {
		return "", errors.New("read back a different secret value")
	}
	return fmt.Sprintf("stored secret machine-branch-srv01 (version %s) over HTTPS and read it back", set.ID.Version()), nil
}

func demoMail(ctx context.Context, s *stack.Stack) (string, error) {
	msg := "From: coffer@localhost\r\nTo: admin@branch.example\r\nSubject: Coffer demo mail\r\n\r\nThis mail was captured by the local SMTP sink.\r\n"
	if err := smtp.SendMail(s.SMTP.Addr(), nil, "coffer@localhost", []string{"admin@branch.example"}, []byte(msg)); err != nil {
		return "", fmt.Errorf("send mail: %w", err)
	}
	got, err := s.SMTP.Wait(ctx, 1)
	if err != nil {
		return "", err
	}
	if got[0].Subject != "Coffer demo mail" {
		return "", fmt.Errorf("captured subject %q", got[0].Subject)
	}
	files, _ := filepath.Glob(filepath.Join(s.MailDir, "*.eml"))
	if len(files) != 1 {
		return "", fmt.Errorf("the sink saved %d files in %s, want 1", len(files), s.MailDir)
	}
	return fmt.Sprintf("sent a mail to admin@branch.example; the sink captured it in %s", files[0]), nil
}
