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

// A demoStep proves one part of the stack answers, through the same Azure
// SDK client Coffer uses against real Azure. It returns what it showed.
type demoStep struct {
	title string
	run   func(ctx context.Context, s *stack.Stack) (string, error)
}

func defaultSteps() []demoStep {
	return []demoStep{
		{"Blob storage (Azurite)", demoBlob},
		{"Table storage (Azurite)", demoTable},
		{"Service Bus (emulator)", demoServiceBus},
		{"Key Vault (emulator)", demoKeyVault},
		{"Email (SMTP sink)", demoMail},
	}
}

func newDemo(stateDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Start the local stack, show that each emulator answers, and stop it",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, cancel := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			_, err := runDemo(ctx, c.OutOrStdout(), filepath.Join(*stateDir, "demo"), defaultSteps())
			return err
		},
	}
}

// demoReport records what the demo ran, so a test can check it is all gone.
type demoReport struct {
	PIDs  map[string]int
	Addrs map[string]string
}

// runDemo starts a private stack (never the one `make dev-up` keeps) in
// stateDir, runs the steps in order until one fails, and always stops the
// stack and checks that no process or port is left. stateDir is emptied
// first and kept afterwards, so its logs and captured mail can be read.
func runDemo(ctx context.Context, out io.Writer, stateDir string, steps []demoStep) (rep demoReport, err error) {
	if err := os.RemoveAll(stateDir); err != nil {
		return rep, fmt.Errorf("clear the demo's folder: %w", err)
	}
	fmt.Fprintln(out, "Coffer demo: the local Azure stack")
	fmt.Fprintln(out, "==> Starting Azurite (Blob, Queue, Table), the Service Bus and Key Vault emulators and an SMTP sink, on free loopback ports")
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := stack.Start(startCtx, stack.Options{StateDir: stateDir, MailPage: true})
	cancel()
	if err != nil {
		return rep, fmt.Errorf("start the local stack: %w", err)
	}
	rep.PIDs, rep.Addrs = s.PIDs(), s.Addrs()
	printAddrs(out, rep.Addrs)
	defer func() {
		fmt.Fprintln(out, "==> Stopping every emulator")
		stopErr := errors.Join(s.Stop(), stack.CheckGone(rep.PIDs, rep.Addrs))
		if stopErr != nil {
			err = errors.Join(err, stopErr)
			return
		}
		fmt.Fprintf(out, "    stopped %s; no port is left open\n", describePIDs(rep.PIDs))
		if err == nil {
			fmt.Fprintf(out, "Demo finished: all %d checks passed.\n", len(steps))
		}
	}()

	for i, st := range steps {
		fmt.Fprintf(out, "==> %d/%d %s\n", i+1, len(steps), st.title)
		stepCtx, cancel := context.WithTimeout(ctx, time.Minute)
		msg, err := st.run(stepCtx, s)
		cancel()
		if err != nil {
			fmt.Fprintf(out, "    FAILED: %v\n", err)
			return rep, fmt.Errorf("demo step %q failed: %w", st.title, err)
		}
		fmt.Fprintf(out, "    ok: %s\n", msg)
	}
	return rep, nil
}

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
