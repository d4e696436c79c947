package adversary

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 8: an agent creates a delete_backup_data job and marks it
// completed, so the vault's history shows a deletion no admin made. Agents
// create only backup and restore jobs; every other type is refused and no
// such job appears.
func TestAgentCannotRecordAnAdminJob(t *testing.T) {
	agent := fx.victim.agent(fx.cp)
	start := time.Now().Add(-time.Second)
	attempted := []string{wire.JobDeleteData, wire.JobDisable, wire.JobConfigure, wire.JobRegister, "DELETE_BACKUP_DATA", ""}
	for _, typ := range attempted {
		var j wire.Job
		_, err := agent.Do(t.Context(), "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: typ}, &j)
		if status(err) != http.StatusBadRequest {
			t.Errorf("an agent creating a %q job: %v (job %+v); want 400", typ, err, j)
			if j.ID != "" {
				agent.Do(t.Context(), "POST", wire.Version+"/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusCompleted}, nil)
			}
		}
	}
	var js []wire.Job
	if _, err := fx.reader.Do(t.Context(), "GET", wire.Version+"/vaults/"+fx.vault.ID+"/jobs?machine="+fx.victim.id, nil, &js); err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(js, func(j wire.Job) bool { return slices.Contains(attempted, j.Type) && !j.StartedAt.Before(start) }); i >= 0 {
		t.Fatalf("the vault lists a %s job of %s that no admin made: %+v", js[i].Type, fx.victim.name, js[i])
	}
	// The machine's real backups are still there to prove the check looked.
	if !slices.ContainsFunc(js, func(j wire.Job) bool { return j.Type == wire.JobBackup && j.Status == wire.StatusCompleted }) {
		t.Fatalf("the job list of %s shows no completed backup: %+v", fx.victim.name, js)
	}
}
