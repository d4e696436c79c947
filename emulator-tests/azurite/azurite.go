// Package azurite runs Azurite, Microsoft's Blob, Queue and Table emulator,
// from the npm package pinned in emulator-tests/package-lock.json.
package azurite

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/coffer-backup/coffer/emulator-tests/locate"
	"github.com/coffer-backup/coffer/emulator-tests/proc"
)

// The well-known development account every Azurite instance serves.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Options configure an Azurite instance.
type Options struct {
	Dir      string // emulator-tests folder; empty means locate.Dir()
	NodePath string // node executable; empty means node from PATH
	// DataDir keeps Azurite's state; empty keeps it in memory only.
	DataDir string
	LogPath string // Azurite's output; empty discards it
	// Args are extra command-line arguments, such as --oauth basic with
	// --cert and --key; with a certificate every service listens on HTTPS.
	Args []string
}

// Azurite is a running instance.
type Azurite struct {
	p                  *proc.Process
	blob, queue, table string // http(s)://127.0.0.1:PORT
}

var listening = regexp.MustCompile(`Azurite (Blob|Queue|Table) service is successfully listening at (https?://\S+)`)

// Start launches Azurite with every service on a port the OS picks and
// returns once all three listen.
func Start(ctx context.Context, opts Options) (*Azurite, error) {
	dir, err := locate.Resolve(opts.Dir)
	if err != nil {
		return nil, err
	}
	script, err := locate.NodeModule(dir, "azurite", "dist", "src", "azurite.js")
	if err != nil {
		return nil, err
	}
	node, err := locate.Node(opts.NodePath)
	if err != nil {
		return nil, err
	}
	args := []string{script,
		"--blobHost", "127.0.0.1", "--blobPort", "0",
		"--queueHost", "127.0.0.1", "--queuePort", "0",
		"--tableHost", "127.0.0.1", "--tablePort", "0",
		// The Go SDK speaks newer service versions than Azurite knows.
		"--skipApiVersionCheck",
		"--disableTelemetry",
		"--silent",
	}
	if opts.DataDir == "" {
		args = append(args, "--inMemoryPersistence")
	} else {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create Azurite data folder: %w", err)
		}
		args = append(args, "--location", opts.DataDir)
	}
	args = append(args, opts.Args...)

	a := &Azurite{}
	var mu sync.Mutex
	p, err := proc.Start(ctx, proc.Spec{
		Name: "azurite", Path: node, Args: args, Dir: dir, LogPath: opts.LogPath,
		ReadyTimeout: 60 * time.Second,
		Ready: func(line string) bool {
			m := listening.FindStringSubmatch(line)
			mu.Lock()
			defer mu.Unlock()
			if m != nil {
				switch m[1] {
				case "Blob":
					a.blob = m[2]
				case "Queue":
					a.queue = m[2]
				case "Table":
					a.table = m[2]
				}
			}
			return a.blob != "" && a.queue != "" && a.table != ""
		},
	})
	if err != nil {
		return nil, err
	}
	a.p = p
	return a, nil
}

// BlobURL is the blob service URL of the development account.
func (a *Azurite) BlobURL() string { return a.blob + "/" + AccountName }

// QueueURL is the queue service URL of the development account.
func (a *Azurite) QueueURL() string { return a.queue + "/" + AccountName }

// TableURL is the table service URL of the development account.
func (a *Azurite) TableURL() string { return a.table + "/" + AccountName }

// ConnectionString is a full connection string for the development account.
// The Go SDK does not understand UseDevelopmentStorage=true.
func (a *Azurite) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;QueueEndpoint=%s;TableEndpoint=%s;",
		AccountName, AccountKey, a.BlobURL(), a.QueueURL(), a.TableURL())
}

// PID is the Azurite process's ID.
func (a *Azurite) PID() int { return a.p.PID() }

// Stop stops Azurite and waits for it to exit.
func (a *Azurite) Stop() error { return a.p.Stop(10 * time.Second) }

// NewContainer creates a container with the account key, as an
// administrator would.
func (a *Azurite) NewContainer(ctx context.Context, name string) error {
	c, err := azblob.NewClientFromConnectionString(a.ConnectionString(), nil)
	if err != nil {
		return err
	}
	if _, err := c.CreateContainer(ctx, name, nil); err != nil {
		return fmt.Errorf("create container %s: %w", name, err)
	}
	return nil
}

// ContainerSAS is a container's URL with a service SAS granting perms
// until expiry: what the control plane hands an agent.
func (a *Azurite) ContainerSAS(container string, perms sas.ContainerPermissions, expiry time.Time) (string, error) {
	cred, err := azblob.NewSharedKeyCredential(AccountName, AccountKey)
	if err != nil {
		return "", err
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Minute), // tolerate clock skew, as Azure advises
		ExpiryTime:    expiry,
		Permissions:   perms.String(),
		ContainerName: container,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", fmt.Errorf("sign SAS: %w", err)
	}
	return a.BlobURL() + "/" + container + "?" + qp.Encode(), nil
}

// Main is a test package's TestMain with Azurite: it starts one, stores it
// in *emu, runs the tests and stops it. Use it as os.Exit(azurite.Main(m, &emu)).
func Main(m interface{ Run() int }, emu **Azurite) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	a, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start Azurite (run make deps to install it):", err)
		return 1
	}
	*emu = a
	code := m.Run()
	if err := a.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop Azurite:", err)
		code = 1
	}
	return code
}
