package infra

// The consistency test: the Bicep CLI cannot run here, so this test reads
// the deployment (infra/**.bicep, main.parameters.json, abbreviations.json,
// azure.yaml) as text and checks it against the code it deploys. check is a
// pure function of the files' contents, so TestCheckerCatchesRemovals can
// feed it mutated copies and prove each check fires.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/functions/api"
	"github.com/coffer-backup/coffer/functions/invocation"
	"github.com/coffer-backup/coffer/functions/triggers"
	"github.com/coffer-backup/coffer/shared/wire"
)

// documentedRoles is the table of built-in role definition IDs in the design
// notes ("Role definition IDs"), copied here because those notes live outside
// the repository. A role assignment may use only these.
var documentedRoles = map[string]string{
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
	"ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
	"974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
	"0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
	"090c5cfd-751d-490a-894a-3ce6f1109419": "Service Bus Data Owner",
	"69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Service Bus Data Sender",
	"4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Service Bus Data Receiver",
	"4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
	"b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
	"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
	// Not in the design notes' table; Azure's built-in role ID, the same in
	// every tenant (az role definition list --name "Role Based Access
	// Control Administrator").
	"f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
}

// requiredRoles must each be assigned somewhere, for the reason given.
var requiredRoles = map[string]string{
	"Storage Blob Data Contributor":           "the app creates and deletes containers and blobs and gets user delegation keys; the host keeps its blobs",
	"Storage Table Data Contributor":          "the control plane's tables",
	"Service Bus Data Sender":                 "the app publishes alerts",
	"Service Bus Data Receiver":               "SendAlertEmail receives them",
	"Monitoring Metrics Publisher":            "telemetry with Application Insights' local auth disabled",
	"Role Based Access Control Administrator": "the registration delegate assigns each machine its role on its own passphrase secret",
}

// excessiveRoles are documented but more than Coffer needs.
var excessiveRoles = map[string]string{
	"Storage Blob Data Owner":   "Storage Blob Data Contributor covers containers, blobs and user delegation keys",
	"Service Bus Data Owner":    "Data Sender and Data Receiver cover publishing and the trigger",
	"Key Vault Secrets Officer": "it reads, versions, deletes and purges every secret; a machine gets the Coffer Machine Passphrase role on its own secret only",
}

// notInAzure are settings functions/config reads that the Bicep must not
// set, each with the reason.
var notInAzure = map[string]string{
	"FUNCTIONS_CUSTOMHANDLER_PORT":        "the Functions host sets it when it starts the handler",
	"COFFER_STORAGE_CONNECTION_STRING":    "emulators only: an account key, and the account has shared keys disabled",
	"COFFER_SERVICEBUS_CONNECTION_STRING": "emulators only: the namespace has local (SAS) auth disabled",
	"COFFER_TOKEN_CONTRIBUTOR":            "local bearer tokens; Azure uses App Service Authentication",
	"COFFER_TOKEN_OPERATOR":               "local bearer tokens; Azure uses App Service Authentication",
	"COFFER_TOKEN_READER":                 "local bearer tokens; Azure uses App Service Authentication",
	"COFFER_TOKEN_SECURITY_ADMIN":         "local bearer tokens; Azure uses App Service Authentication (app role Backup.SecurityAdmin, checked by TestAppRolesMatchTheAPI)",
	"COFFER_DEV_CLOCK":                    "local demos only; config refuses it with App Service Authentication",
	"COFFER_ARM_ENDPOINT":                 "the local Key Vault emulator's Resource Manager; in Azure the default, management.azure.com",
	"COFFER_ARM_TOKEN":                    "a static token for the Key Vault emulator; in Azure the managed identity",
	"WEBSITE_HOSTNAME":                    "App Service sets it (COFFER_PUBLIC_URL is set explicitly)",
	"WEBSITE_AUTH_ENABLED":                "App Service sets it when authentication is on (COFFER_AUTH_MODE is set explicitly)",
}

// refusedSettings are never set, though the code does not read them.
var refusedSettings = map[string]string{
	"FUNCTIONS_WORKER_RUNTIME":    "Flex Consumption takes the runtime from functionAppConfig.runtime and refuses the setting",
	"FUNCTIONS_EXTENSION_VERSION": "Flex Consumption refuses it",
	"AzureWebJobsStorage":         "a connection string holds a key; the host uses AzureWebJobsStorage__* with the identity",
}

// hostSettings are read by the Functions host rather than the handler.
var hostSettings = map[string]string{
	"AzureWebJobsStorage__accountName":          "host storage with the identity",
	"AzureWebJobsStorage__credential":           "host storage with the identity",
	"AzureWebJobsStorage__clientId":             "host storage with the user-assigned identity",
	"APPLICATIONINSIGHTS_CONNECTION_STRING":     "telemetry",
	"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry with Entra ID, as local auth is disabled",
}

// function is what the check needs from triggers.FunctionSpec.
type function struct {
	Name, Kind, Queue, Connection string
}

// inputs are the files the check reads, plus what only running code can
// tell (the function list and how the API authenticates each route).
type inputs struct {
	Bicep             map[string]string // infra/**.bicep by slash path from the repository root
	ParametersJSON    string            // infra/main.parameters.json
	AbbreviationsJSON string            // infra/abbreviations.json
	AzureYAML         string
	Makefile          string
	HostJSON          string
	ConfigGo          string            // functions/config/config.go
	TriggersGo        string            // functions/triggers/functions.go
	AppGo             string            // functions/app/app.go
	GoFiles           map[string]string // functions/**.go without tests
	FunctionJSON      map[string]string // functions/host/<name>/function.json by name

	Functions          []function // triggers.Functions
	DefaultAlertsQueue string     // triggers.DefaultAlertsQueue
	APIVersion         string     // wire.Version, the API's path prefix
	SelfAuthenticated  []string   // API paths the handler authenticates itself (agents' signatures, or none)
	AdminPaths         []string   // API paths that need an App Service principal
}

// problems collects findings.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// check returns every inconsistency between the deployment and the code.
func check(in inputs) []string {
	var ps problems
	proj := newProject(in.Bicep)
	settings := checkAppSettings(&ps, proj, in)
	checkTablesAndQueues(&ps, proj, in, settings)
	checkRoles(&ps, proj)
	checkKeyVaultRoles(&ps, proj)
	checkFunctions(&ps, proj, in)
	checkAuthExclusions(&ps, proj, in)
	checkAzureYAML(&ps, proj, in)
	checkParameters(&ps, proj, in)
	return ps
}

// appSetting is one key of the app settings and the file it is set in.
type appSetting struct {
	value segment
	file  *bicepFile
}

// 1. Every setting the handler reads in Azure is set; local-only ones are not.
func checkAppSettings(ps *problems, proj *project, in inputs) map[string]appSetting {
	settings := map[string]appSetting{}
	found := false
	for _, d := range proj.resources("Microsoft.Web/sites/config@") {
		name, _ := d.field("name")
		if !slices.Contains(proj.values(d.file, name, 0), "appsettings") {
			continue
		}
		found = true
		props, _ := d.field("properties")
		for _, e := range proj.objectEntries(d.file, props, 0) {
			settings[e.key] = appSetting{e.value, d.file}
		}
	}
	if !found {
		ps.add("no Microsoft.Web/sites/config resource named 'appsettings' in infra/: the app settings could not be found")
		return settings
	}

	names, err := settingNames(in.ConfigGo)
	if err != nil {
		ps.add("functions/config/config.go: %v", err)
	}
	for name := range notInAzure {
		if !slices.Contains(names, name) {
			ps.add("the test's notInAzure list names %s, which functions/config no longer reads: drop it from the list", name)
		}
	}
	for _, name := range names {
		_, set := settings[name]
		switch why, local := notInAzure[name]; {
		case local && set:
			ps.add("app setting %s is set in infra/ but must not be in Azure: %s", name, why)
		case !local && !set:
			ps.add("app setting %s, read by functions/config, is not set in infra/ (add it to the 'appsettings' resource, or to notInAzure in this test with the reason)", name)
		}
	}
	for name, why := range refusedSettings {
		if _, set := settings[name]; set {
			ps.add("app setting %s must not be set: %s", name, why)
		}
	}
	for name, why := range hostSettings {
		if _, set := settings[name]; !set {
			ps.add("app setting %s is not set in infra/ (%s)", name, why)
		}
	}
	// The Service Bus binding: %SETTING% in its queue name, and an
	// identity-based connection with the user-assigned identity.
	for _, f := range in.Functions {
		if f.Kind != string(triggers.KindServiceBus) {
			continue
		}
		need := []string{f.Connection + "__fullyQualifiedNamespace", f.Connection + "__credential", f.Connection + "__clientId"}
		if q, ok := strings.CutPrefix(f.Queue, "%"); ok {
			need = append(need, strings.TrimSuffix(q, "%"))
		}
		for _, name := range need {
			if _, set := settings[name]; !set {
				ps.add("app setting %s, used by %s's Service Bus binding, is not set in infra/", name, f.Name)
			}
		}
	}
	if s, ok := settings["COFFER_AUTH_MODE"]; ok && !slices.Equal(proj.values(s.file, s.value, 0), []string{"appservice"}) {
		ps.add("app setting COFFER_AUTH_MODE must be 'appservice' in Azure, got %s", s.value.clean)
	}
	if s, ok := settings["COFFER_SMTP_PASSWORD"]; ok && !strings.Contains(s.value.clean, "@Microsoft.KeyVault(SecretUri=") {
		ps.add("app setting COFFER_SMTP_PASSWORD must be a Key Vault reference (@Microsoft.KeyVault(SecretUri=...)), got %s", s.value.clean)
	}
	return settings
}

// settingNames returns the values of the const block documented "Setting
// names" in functions/config/config.go.
func settingNames(src string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || g.Doc == nil || !strings.Contains(g.Doc.Text(), "Setting names") {
			continue
		}
		for _, s := range g.Specs {
			for _, v := range s.(*ast.ValueSpec).Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						names = append(names, s)
					}
				}
			}
		}
	}
	if len(names) == 0 {
		return nil, errors.New(`no const block documented "Setting names" with string values`)
	}
	return names, nil
}

// stringConsts returns a Go file's top-level string constants by name.
func stringConsts(src string) (map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "x.go", src, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING && i < len(vs.Names) {
					out[vs.Names[i].Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	return out, nil
}

var (
	newClientRE = regexp.MustCompile(`\.NewClient\("([^"]+)"\)`)
	tableNameRE = regexp.MustCompile(`\bTableName\s*=\s*"([^"]+)"`)
)

// 2. Every table and queue the code uses is created.
func checkTablesAndQueues(ps *problems, proj *project, in inputs, settings map[string]appSetting) {
	code := map[string]string{} // table → where the code names it
	for name, src := range in.GoFiles {
		for _, m := range newClientRE.FindAllStringSubmatch(src, -1) {
			code[m[1]] = name
		}
		if strings.HasPrefix(name, "functions/jobs/") {
			for _, m := range tableNameRE.FindAllStringSubmatch(src, -1) {
				code[m[1]] = name + " (jobs.TableName)"
			}
		}
	}
	if len(code) == 0 {
		ps.add("found no tables in functions/ (NewClient(\"...\") calls, jobs.TableName): the test's patterns no longer match the code")
	}
	created := resourceNames(ps, proj, "Microsoft.Storage/storageAccounts/tableServices/tables@")
	for table, where := range code {
		if !created[table] {
			ps.add("table %s, used in %s, is not created in infra/ (a Microsoft.Storage/storageAccounts/tableServices/tables resource)", table, where)
		}
	}
	for table := range created {
		if _, used := code[table]; !used {
			ps.add("infra/ creates table %s, which no code in functions/ uses", table)
		}
	}

	queues := resourceNames(ps, proj, "Microsoft.ServiceBus/namespaces/queues@")
	want := map[string][]string{in.DefaultAlertsQueue: {"triggers.DefaultAlertsQueue"}}
	if s, ok := settings[triggers.AlertsQueueSetting]; ok {
		vs := proj.values(s.file, s.value, 0)
		if len(vs) == 0 {
			ps.add("the value infra/ sets for %s (%s) cannot be worked out: use a literal, or a var or param that leads to one", triggers.AlertsQueueSetting, s.value.clean)
		}
		for _, v := range vs {
			want[v] = append(want[v], "the app setting "+triggers.AlertsQueueSetting)
		}
	}
	for q, why := range want {
		if !queues[q] {
			ps.add("Service Bus queue %s (%s) is not created in infra/ (a Microsoft.ServiceBus/namespaces/queues resource)", q, strings.Join(why, ", "))
		}
	}
}

// resourceNames returns the names of every resource of a type, following
// [for x in list: {name: x}] loops.
func resourceNames(ps *problems, proj *project, typePrefix string) map[string]bool {
	out := map[string]bool{}
	for _, d := range proj.resources(typePrefix) {
		name, ok := d.field("name")
		var vs []string
		switch {
		case !ok:
		case d.loopVar != "" && name.masked == d.loopVar:
			vs = proj.values(d.file, d.loopExpr, 0)
		default:
			vs = proj.values(d.file, name, 0)
		}
		if len(vs) == 0 {
			ps.add("%s: the name of resource %s cannot be worked out: use a literal, or a var or param that leads to one", d.file.path, d.symbol)
		}
		for _, v := range vs {
			out[v] = true
		}
	}
	return out
}

var (
	guidRE  = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	tokenRE = regexp.MustCompile(`[A-Za-z_]\w*`)
)

// 3. Role assignments use documented role IDs, with least privilege, each
// justified, and the roles the design needs are there.
func checkRoles(ps *problems, proj *project) {
	assigned := map[string]bool{}
	for _, d := range proj.resources("Microsoft.Authorization/roleAssignments@") {
		where := d.file.path + ": role assignment " + d.symbol
		if !justified(d) {
			ps.add("%s has no // comment above it justifying the role", where)
		}
		props, _ := d.field("properties")
		expr, ok := proj.lookup(d.file, props, "roleDefinitionId")
		if !ok {
			ps.add("%s has no properties.roleDefinitionId", where)
			continue
		}
		ids := roleIDs(proj, d.file, expr)
		if len(ids) == 0 {
			ps.add("%s: roleDefinitionId %s does not lead to a role definition ID", where, expr.clean)
		}
		for _, id := range ids {
			role, ok := documentedRoles[strings.ToLower(id)]
			if !ok {
				ps.add("%s uses role definition ID %s, which is not one of the documented IDs", where, id)
				continue
			}
			assigned[role] = true
			if why, bad := excessiveRoles[role]; bad {
				ps.add("%s grants %s, more than needed: %s", where, role, why)
			}
			if role == "Key Vault Secrets User" && !scopedToSecret(proj, d) {
				ps.add("%s grants Key Vault Secrets User, which must be scoped to the one secret the app reads (a Microsoft.KeyVault/vaults/secrets resource), not the vault", where)
			}
		}
	}
	for role, why := range requiredRoles {
		if !assigned[role] {
			ps.add("no role assignment in infra/ grants %s (%s)", role, why)
		}
	}
}

// 3b. Key Vault least privilege (docs/security.md, "Key Vault roles"): the
// machine passphrase role has exactly the data actions the emulator
// enforces, the passphrase vault has RBAC and purge protection, and the
// only one who may assign roles there is a delegate held by an ABAC
// condition to that one role, to service principals other than itself.
func checkKeyVaultRoles(ps *problems, proj *project) {
	defs := proj.resources("Microsoft.Authorization/roleDefinitions@")
	if len(defs) != 1 {
		ps.add("infra/ declares %d custom role definitions, want exactly one: the machine passphrase role (%s)", len(defs), vault.MachineRoleName)
		return
	}
	role := defs[0]
	where := role.file.path + ": role definition " + role.symbol
	props, _ := role.field("properties")
	if name, ok := proj.lookup(role.file, props, "roleName"); !ok || !strings.HasPrefix(strings.Trim(name.clean, "'"), vault.MachineRoleName) {
		ps.add("%s: roleName must start with %q, the name the agent tells admins to assign (agent/vault.MachineRoleName)", where, vault.MachineRoleName)
	}
	perms, _ := proj.lookup(role.file, props, "permissions")
	permList, ok := inner(perms, '[')
	if its := items(permList); !ok || len(its) != 1 {
		ps.add("%s: permissions must be one literal block", where)
	} else {
		block := its[0]
		got := proj.values(role.file, mustLookup(proj, role.file, block, "dataActions"), 0)
		want := keyvault.MachinePassphraseDataActions
		if !sameSet(got, want) {
			ps.add("%s: dataActions are %v, but a machine needs exactly %v (keyvault.MachinePassphraseDataActions, which the emulator enforces): no delete, purge, backup, restore or wildcard", where, got, want)
		}
		for _, k := range []string{"actions", "notDataActions"} {
			if v, ok := proj.lookup(role.file, block, k); ok && strings.TrimSpace(v.masked) != "[]" {
				ps.add("%s: %s must be [] (a machine needs no control-plane action, and the data actions are listed exactly)", where, k)
			}
		}
	}
	// The vault in the same file is the passphrase vault.
	var passVault *decl
	for _, d := range proj.resources("Microsoft.KeyVault/vaults@") {
		if d.file == role.file {
			passVault = &d
		}
	}
	if passVault == nil {
		ps.add("%s: no Microsoft.KeyVault/vaults resource beside the machine passphrase role (the passphrase vault)", role.file.path)
		return
	}
	vprops, _ := passVault.field("properties")
	for _, k := range []string{"enableRbacAuthorization", "enablePurgeProtection"} {
		if v, ok := proj.lookup(passVault.file, vprops, k); !ok || v.clean != "true" {
			ps.add("%s: the passphrase vault %s must set %s: true (per-secret roles need RBAC; purge protection keeps deleted passphrases recoverable)", passVault.file.path, passVault.symbol, k)
		}
	}

	delegates := 0
	for _, d := range proj.resources("Microsoft.Authorization/roleAssignments@") {
		props, _ := d.field("properties")
		expr, ok := proj.lookup(d.file, props, "roleDefinitionId")
		if !ok || !slices.ContainsFunc(roleIDs(proj, d.file, expr), func(id string) bool {
			return documentedRoles[strings.ToLower(id)] == "Role Based Access Control Administrator"
		}) {
			continue
		}
		delegates++
		where := d.file.path + ": role assignment " + d.symbol
		if scope, ok := d.field("scope"); !ok || scope.masked != passVault.symbol || d.file != passVault.file {
			ps.add("%s grants Role Based Access Control Administrator, which must be scoped to the passphrase vault (scope: %s), not wider", where, passVault.symbol)
		}
		if v, ok := proj.lookup(d.file, props, "conditionVersion"); !ok || strings.Trim(v.clean, "'") != "2.0" {
			ps.add("%s: conditionVersion must be '2.0'", where)
		}
		cond, ok := proj.lookup(d.file, props, "condition")
		if ok && identRE.MatchString(cond.masked) {
			if kind, e, has := d.file.declaration(cond.masked); kind == "var" && has {
				cond = e
			}
		}
		text := strings.ReplaceAll(cond.clean, `\'`, "'")
		principal, _ := proj.lookup(d.file, props, "principalId")
		roleRef := "${" + role.symbol + ".name}"
		for _, need := range []struct{ frag, why string }{
			{"ActionMatches{'Microsoft.Authorization/roleAssignments/write'}", "constrain the assignments it writes"},
			{"@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {" + roleRef + "}", "write only the machine passphrase role"},
			{"@Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal'}", "assign only to service principals (machines' identities)"},
			{"@Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAllValues:GuidNotEquals {${" + strings.TrimSpace(principal.clean) + "}}", "never assign to itself, so the control plane cannot read a passphrase"},
			{"ActionMatches{'Microsoft.Authorization/roleAssignments/delete'}", "constrain the assignments it deletes"},
			{"@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {" + roleRef + "}", "delete only assignments of the machine passphrase role"},
		} {
			if !ok || !strings.Contains(text, need.frag) {
				ps.add("%s: its ABAC condition must contain %s, to %s", where, need.frag, need.why)
			}
		}
	}
	if delegates == 0 {
		ps.add("no role assignment in infra/ grants Role Based Access Control Administrator on the passphrase vault: nobody can give a machine its role on its secret")
	}
}

func mustLookup(proj *project, f *bicepFile, obj segment, key string) segment {
	v, _ := proj.lookup(f, obj, key)
	return v
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y)) && len(a) == len(b)
}

// roleIDs returns the GUIDs in a roleDefinitionId expression, directly or
// through the names it uses.
func roleIDs(proj *project, f *bicepFile, expr segment) []string {
	if ids := guidRE.FindAllString(expr.clean, -1); len(ids) > 0 {
		return ids
	}
	var ids []string
	for _, loc := range tokenRE.FindAllStringIndex(expr.masked, -1) {
		if loc[1] < len(expr.masked) && expr.masked[loc[1]] == '(' {
			continue // a function
		}
		for _, v := range proj.nameValues(f, expr.masked[loc[0]:loc[1]], 0) {
			ids = append(ids, guidRE.FindAllString(v, -1)...)
		}
	}
	return ids
}

// justified reports whether a // comment sits directly above a declaration
// (decorators may come between).
func justified(d decl) bool {
	lines := strings.Split(d.file.raw[:d.start], "\n")
	for i := len(lines) - 2; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(l, "@"):
			continue
		case strings.HasPrefix(l, "//"):
			return true
		default:
			return false
		}
	}
	return false
}

func scopedToSecret(proj *project, d decl) bool {
	scope, ok := d.field("scope")
	if !ok {
		return false
	}
	for _, r := range proj.resources("Microsoft.KeyVault/vaults/secrets@") {
		if r.file == d.file && r.symbol == scope.masked {
			return true
		}
	}
	return false
}

// 4. The function folders match triggers.Functions, each function is a
// route the handler serves, and the app runs as a custom handler.
func checkFunctions(ps *problems, proj *project, in inputs) {
	listed := map[string]function{}
	for _, f := range in.Functions {
		listed[f.Name] = f
	}
	for name := range in.FunctionJSON {
		if _, ok := listed[name]; !ok {
			ps.add("functions/host/%s/function.json is not in triggers.Functions", name)
		}
	}
	routes, err := hostRoutes(in.AppGo, in.TriggersGo)
	if err != nil {
		ps.add("functions/app/app.go: %v", err)
	}
	var host struct {
		Extensions struct {
			HTTP struct {
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
		} `json:"extensions"`
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal([]byte(in.HostJSON), &host); err != nil {
		ps.add("host.json: %v", err)
	}
	prefix := "api" // the host's default
	if p := host.Extensions.HTTP.RoutePrefix; p != nil {
		prefix = *p
	}
	for _, f := range in.Functions {
		src, ok := in.FunctionJSON[f.Name]
		if !ok {
			ps.add("function %s (triggers.Functions) has no functions/host/%s/function.json", f.Name, f.Name)
			continue
		}
		var fj struct {
			Bindings []struct {
				Type      string `json:"type"`
				Direction string `json:"direction"`
				Route     string `json:"route"`
			} `json:"bindings"`
		}
		if err := json.Unmarshal([]byte(src), &fj); err != nil {
			ps.add("functions/host/%s/function.json: %v", f.Name, err)
			continue
		}
		trigger := ""
		route := ""
		for _, b := range fj.Bindings {
			if strings.HasSuffix(b.Type, "Trigger") {
				trigger, route = strings.TrimSuffix(b.Type, "Trigger"), b.Route
			}
		}
		if trigger != f.Kind {
			ps.add("functions/host/%s/function.json has a %q trigger, but triggers.Functions says %q", f.Name, trigger, f.Kind)
		}
		switch f.Kind {
		case string(triggers.KindHTTP):
			// The host forwards /<prefix>/<route> unchanged to the handler,
			// whose API lives under wire.Version.
			if route != "{*path}" {
				ps.add("functions/host/%s/function.json: the HTTP route must be {*path} so every API path is forwarded, got %q", f.Name, route)
			}
			if !strings.HasPrefix(in.APIVersion+"/", "/"+prefix+"/") || prefix == "" {
				ps.add("host.json routePrefix %q does not lead to the API's paths (%s/...)", prefix, in.APIVersion)
			}
		default:
			if !slices.Contains(routes, "POST /"+f.Name) {
				ps.add("function %s is not a route the handler registers (POST /%s through triggers.Register in functions/app)", f.Name, f.Name)
			}
		}
	}

	if exe := host.CustomHandler.Description.DefaultExecutablePath; exe != "" {
		if dir, bin, _, _ := makePackage(in.Makefile); bin != "" && bin != path.Join(dir, exe) {
			ps.add("Makefile's package target builds %s, but host.json starts %s", bin, exe)
		}
	}
	sites := proj.resources("Microsoft.Web/sites@")
	if len(sites) == 0 {
		ps.add("no Microsoft.Web/sites resource in infra/")
	}
	for _, s := range sites {
		props, _ := s.field("properties")
		name, ok := proj.lookup(s.file, props, "functionAppConfig", "runtime", "name")
		if !ok || !slices.Equal(proj.values(s.file, name, 0), []string{"custom"}) {
			ps.add("%s: site %s must run properties.functionAppConfig.runtime.name 'custom' (a custom handler on Flex Consumption)", s.file.path, s.symbol)
		}
	}
}

// hostRoutes returns the invocation routes functions/app registers: POST
// /<Name> for the timers it passes to triggers.Timers and the message
// functions it passes to triggers.Register.
func hostRoutes(appGo, triggersGo string) ([]string, error) {
	consts, err := stringConsts(triggersGo)
	if err != nil {
		return nil, fmt.Errorf("functions/triggers/functions.go: %w", err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "app.go", appGo, 0)
	if err != nil {
		return nil, err
	}
	var routes []string
	registers := false
	keys := func(e ast.Expr) {
		lit, ok := e.(*ast.CompositeLit)
		if !ok {
			return
		}
		for _, el := range lit.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			switch k := kv.Key.(type) {
			case *ast.SelectorExpr:
				if v, ok := consts[k.Sel.Name]; ok {
					routes = append(routes, "POST /"+v)
				}
			case *ast.BasicLit:
				if v, err := strconv.Unquote(k.Value); err == nil {
					routes = append(routes, "POST /"+v)
				}
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "triggers" {
			return true
		}
		switch {
		case sel.Sel.Name == "Timers" && len(call.Args) == 1:
			keys(call.Args[0])
		case sel.Sel.Name == "Register" && len(call.Args) == 3:
			registers = true
			keys(call.Args[2])
		}
		return true
	})
	if !registers {
		return routes, errors.New("no triggers.Register(e, timers, messages) call: the timers and message functions are not routed")
	}
	return routes, nil
}

// 5a. App Service Authentication leaves exactly the handler's
// self-authenticated routes to it.
func checkAuthExclusions(ps *problems, proj *project, in inputs) {
	var auth *decl
	for _, d := range proj.resources("Microsoft.Web/sites/config@") {
		if name, _ := d.field("name"); slices.Contains(proj.values(d.file, name, 0), "authsettingsV2") {
			auth = &d
		}
	}
	if auth == nil {
		ps.add("no Microsoft.Web/sites/config resource named 'authsettingsV2' in infra/: App Service Authentication is not configured")
		return
	}
	props, _ := auth.field("properties")
	if a, ok := proj.lookup(auth.file, props, "globalValidation", "unauthenticatedClientAction"); !ok || !slices.Equal(proj.values(auth.file, a, 0), []string{"Return401"}) {
		ps.add("authsettingsV2: globalValidation.unauthenticatedClientAction must be 'Return401' (an API, not a login page)")
	}
	if r, ok := proj.lookup(auth.file, props, "globalValidation", "requireAuthentication"); !ok || strings.TrimSpace(r.clean) != "true" {
		ps.add("authsettingsV2: globalValidation.requireAuthentication must be true")
	}
	expr, _ := proj.lookup(auth.file, props, "globalValidation", "excludedPaths")
	excluded := proj.values(auth.file, expr, 0)
	matches := func(pattern, p string) bool {
		if pre, ok := strings.CutSuffix(pattern, "/*"); ok {
			return strings.HasPrefix(p, pre+"/")
		}
		return p == pattern
	}
	for _, pattern := range excluded {
		if strings.Contains(strings.TrimSuffix(pattern, "/*"), "*") {
			ps.add("authsettingsV2 excluded path %q: App Service supports only a trailing /* wildcard", pattern)
		}
		used := false
		for _, p := range in.SelfAuthenticated {
			used = used || matches(pattern, p)
		}
		if !used {
			ps.add("authsettingsV2 excludes %q, which matches none of the routes the handler authenticates itself", pattern)
		}
		for _, p := range in.AdminPaths {
			if matches(pattern, p) {
				ps.add("authsettingsV2 excludes %q, which lets unauthenticated requests reach admin route %s", pattern, p)
			}
		}
	}
	for _, p := range in.SelfAuthenticated {
		if !slices.ContainsFunc(excluded, func(pattern string) bool { return matches(pattern, p) }) {
			ps.add("route %s authenticates agents itself but is not in authsettingsV2's excludedPaths: App Service would answer 401 to agents", p)
		}
	}
}

// 5b. azure.yaml deploys the zip `make package` writes of the folder it
// stages, after running it. azd deploys a .zip dist as it is; a folder it
// would zip itself, with modes from the file system, which leaves the binary
// without its executable bit when packaged on Windows.
func checkAzureYAML(ps *problems, proj *project, in inputs) {
	y, err := parseYAML(in.AzureYAML)
	if err != nil {
		ps.add("azure.yaml: %v", err)
		return
	}
	// The service azd deploys is the one the function app is tagged with.
	var tagged []string
	for _, name := range proj.order {
		f := proj.files[name]
		for _, loc := range regexp.MustCompile(`'azd-service-name'[ \t]*:[ \t]*`).FindAllStringIndex(f.clean, -1) {
			end := exprEnd(f.masked, loc[1])
			if e := strings.IndexAny(f.masked[loc[1]:end], ",}"); e >= 0 {
				end = loc[1] + e
			}
			tagged = append(tagged, proj.values(f, segment{f.clean[loc[1]:end], f.masked[loc[1]:end]}, 0)...)
		}
	}
	if len(tagged) != 1 {
		ps.add("infra/ should tag exactly one resource with a known azd-service-name, found %q", tagged)
		return
	}
	svc := tagged[0]
	services, _ := y["services"].(map[string]any)
	s, ok := services[svc].(map[string]any)
	if !ok {
		ps.add("azure.yaml has no service %q, the azd-service-name the function app is tagged with", svc)
		return
	}
	for key, want := range map[string]string{"host": "function", "language": "custom", "project": "."} {
		if got := str(s, key); got != want {
			ps.add("azure.yaml: services.%s.%s is %q, want %q", svc, key, got, want)
		}
	}
	dir, bin, zipDir, zip := makePackage(in.Makefile)
	switch {
	case dir == "":
		ps.add("Makefile: the package target has no `mkdir -p <folder>`, so the staged folder is unknown")
	case zip == "":
		ps.add("Makefile: the package target does not zip %s with functions/cmd/funczip (-dir ... -out ...), so azd would zip it and lose the binary's executable bit on Windows", dir)
	case zipDir != dir:
		ps.add("Makefile: the package target zips %s but stages %s", zipDir, dir)
	}
	if dist := path.Clean(path.Join(str(s, "project"), str(s, "dist"))); zip != "" && dist != zip {
		ps.add("azure.yaml: services.%s.dist is %q, but `make package` writes %q", svc, str(s, "dist"), zip)
	}
	if bin != "" && dir != "" && path.Dir(bin) != dir {
		ps.add("Makefile: the package target builds %s outside the folder it stages, %s", bin, dir)
	}
	for _, shell := range []string{"posix", "windows"} {
		if run := str(s, "hooks", "prepackage", shell, "run"); !strings.Contains(run, "make package") {
			ps.add("azure.yaml: services.%s.hooks.prepackage.%s.run is %q, want it to run `make package`", svc, shell, run)
		}
	}
}

// makePackage reads the Makefile's package target: the folder it stages
// (mkdir -p), the binary it builds (go build -o), and the folder and zip
// funczip is given (-dir, -out).
func makePackage(makefile string) (dir, bin, zipDir, zip string) {
	lines := strings.Split(makefile, "\n")
	for i, l := range lines {
		if !regexp.MustCompile(`^package\s*:`).MatchString(l) {
			continue
		}
		for _, r := range lines[i+1:] {
			if !strings.HasPrefix(r, "\t") {
				break
			}
			if m := regexp.MustCompile(`mkdir\s+-p\s+(\S+)`).FindStringSubmatch(r); m != nil && dir == "" {
				dir = path.Clean(m[1])
			}
			if m := regexp.MustCompile(`\sbuild\s.*-o\s+(\S+)`).FindStringSubmatch(r); m != nil {
				bin = path.Clean(m[1])
			}
			if m := regexp.MustCompile(`funczip\s.*-dir\s+(\S+)\s.*-out\s+(\S+)`).FindStringSubmatch(r); m != nil {
				zipDir, zip = path.Clean(m[1]), path.Clean(m[2])
			}
		}
	}
	return dir, bin, zipDir, zip
}

// 6. main.parameters.json passes every main.bicep parameter and nothing else,
// the outputs azd users rely on exist, and abbreviations.json holds exactly
// the abbreviations used.
func checkParameters(ps *problems, proj *project, in inputs) {
	main, ok := proj.files["infra/main.bicep"]
	if !ok {
		ps.add("infra/main.bicep is missing")
		return
	}
	if !regexp.MustCompile(`(?m)^targetScope\s*=\s*'subscription'`).MatchString(main.clean) {
		ps.add("infra/main.bicep must have targetScope = 'subscription'")
	}
	params := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^[ \t]*param[ \t]+([A-Za-z_]\w*)[ \t]`).FindAllStringSubmatch(main.masked, -1) {
		params[m[1]] = true
	}
	var pj struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal([]byte(in.ParametersJSON), &pj); err != nil {
		ps.add("infra/main.parameters.json: %v", err)
	}
	for p := range params {
		if _, ok := pj.Parameters[p]; !ok {
			ps.add("infra/main.parameters.json does not pass parameter %s of main.bicep (azd sets parameters from there)", p)
		}
	}
	for p := range pj.Parameters {
		if !params[p] {
			ps.add("infra/main.parameters.json passes %s, which main.bicep does not declare (the deployment would fail)", p)
		}
	}
	for p, env := range map[string]string{"environmentName": "${AZURE_ENV_NAME}", "location": "${AZURE_LOCATION}", "principalId": "${AZURE_PRINCIPAL_ID}"} {
		if v, ok := pj.Parameters[p]; ok && v.Value != env {
			ps.add("infra/main.parameters.json: %s must be %q, got %v", p, env, v.Value)
		}
	}
	for _, out := range []string{"CONTROL_PLANE_URL", "KEYVAULT_URL", "AZURE_FUNCTION_APP_NAME"} {
		if !regexp.MustCompile(`(?m)^[ \t]*output[ \t]+` + out + `[ \t]`).MatchString(main.masked) {
			ps.add("infra/main.bicep has no output %s", out)
		}
	}

	var abbrs map[string]string
	if err := json.Unmarshal([]byte(in.AbbreviationsJSON), &abbrs); err != nil {
		ps.add("infra/abbreviations.json: %v", err)
	}
	used := map[string]bool{}
	for _, name := range proj.order {
		for _, m := range regexp.MustCompile(`\babbrs\.([A-Za-z_]\w*)`).FindAllStringSubmatch(proj.files[name].clean, -1) {
			used[m[1]] = true
			if _, ok := abbrs[m[1]]; !ok {
				ps.add("%s uses abbrs.%s, which infra/abbreviations.json does not define", name, m[1])
			}
		}
	}
	for a := range abbrs {
		if !used[a] {
			ps.add("infra/abbreviations.json defines %s, which no Bicep file uses", a)
		}
	}
}

// parseYAML reads the block-mapping subset of YAML that azure.yaml uses:
// nested "key: value" lines, comments and quoted scalars. List items are
// skipped; nothing checked here is in a list.
func parseYAML(src string) (map[string]any, error) {
	root := map[string]any{}
	type level struct {
		indent int
		m      map[string]any
	}
	stack := []level{{-1, root}}
	for n, line := range strings.Split(src, "\n") {
		if i := commentStart(line); i >= 0 {
			line = line[:i]
		}
		text := strings.TrimSpace(line)
		if text == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if strings.HasPrefix(strings.TrimLeft(line, " "), "\t") {
			return nil, fmt.Errorf("line %d: tabs are not allowed in YAML indentation", n+1)
		}
		for len(stack) > 1 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if text == "-" || strings.HasPrefix(text, "- ") {
			continue
		}
		key, val, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: expected key: value, got %q", n+1, text)
		}
		key, val = unquoteYAML(strings.TrimSpace(key)), strings.TrimSpace(val)
		parent := stack[len(stack)-1].m
		if val == "" {
			child := map[string]any{}
			parent[key] = child
			stack = append(stack, level{indent, child})
			continue
		}
		parent[key] = unquoteYAML(val)
	}
	return root, nil
}

// commentStart finds a # that starts a comment (not inside quotes).
func commentStart(line string) int {
	var quote byte
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return i
		}
	}
	return -1
}

func unquoteYAML(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// str reads a string at a path of keys in parsed YAML.
func str(m map[string]any, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

// ---- Reading the real repository ----

// repoRoot is the repository root: the test runs in infra/.
const repoRoot = ".."

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// walk returns the files under dir (slash path from the root) that keep.
func walk(t *testing.T, dir string, keep func(rel string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(repoRoot, filepath.FromSlash(dir))
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if keep(rel) {
			out[rel] = readFile(t, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// authRecorder notes whether the API asked for an admin principal.
type authRecorder struct{ asked bool }

func (a *authRecorder) Authenticate(*http.Request) (api.Principal, error) {
	a.asked = true
	return api.Principal{}, errors.New("consistency test: no principal")
}

// classifyRoutes sends one request to every route of the real API and sorts
// the paths by whether it asked for an admin principal (App Service
// Authentication must apply) or not (the handler authenticates the caller
// itself, by signature or not at all, so App Service must let it through).
// Stores are nil: a handler that gets past authentication panics, which
// echo's recover middleware turns into a 500, and that is fine here.
func classifyRoutes(t *testing.T) (self, admin []string) {
	t.Helper()
	rec := &authRecorder{}
	e := api.New(api.Deps{Auth: rec, Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	seen := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // echo's catch-all for a group's middleware
		}
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") || s == "*" {
				segs[i] = "x1"
			}
		}
		p := strings.Join(segs, "/")
		rec.asked = false
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.Method, p, strings.NewReader("{}")))
		key := fmt.Sprint(rec.asked, p)
		if seen[key] {
			continue
		}
		seen[key] = true
		if rec.asked {
			admin = append(admin, p)
		} else {
			self = append(self, p)
		}
	}
	slices.Sort(self)
	slices.Sort(admin)
	return self, admin
}

func realInputs(t *testing.T) inputs {
	t.Helper()
	in := inputs{
		Bicep:             walk(t, "infra", func(rel string) bool { return strings.HasSuffix(rel, ".bicep") }),
		ParametersJSON:    readFile(t, "infra/main.parameters.json"),
		AbbreviationsJSON: readFile(t, "infra/abbreviations.json"),
		AzureYAML:         readFile(t, "azure.yaml"),
		Makefile:          readFile(t, "Makefile"),
		HostJSON:          readFile(t, "host.json"),
		ConfigGo:          readFile(t, "functions/config/config.go"),
		TriggersGo:        readFile(t, "functions/triggers/functions.go"),
		AppGo:             readFile(t, "functions/app/app.go"),
		GoFiles: walk(t, "functions", func(rel string) bool {
			return strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") && !strings.Contains(rel, "/testdata/")
		}),
		FunctionJSON:       map[string]string{},
		DefaultAlertsQueue: triggers.DefaultAlertsQueue,
		APIVersion:         wire.Version,
	}
	for rel, src := range walk(t, "functions/host", func(rel string) bool { return path.Base(rel) == "function.json" }) {
		in.FunctionJSON[path.Base(path.Dir(rel))] = src
	}
	for _, f := range triggers.Functions {
		in.Functions = append(in.Functions, function{Name: f.Name, Kind: string(f.Kind), Queue: f.Queue, Connection: f.Connection})
	}
	in.SelfAuthenticated, in.AdminPaths = classifyRoutes(t)
	return in
}

func TestInfraMatchesTheCode(t *testing.T) {
	in := realInputs(t)
	if len(in.SelfAuthenticated) == 0 || len(in.AdminPaths) == 0 {
		t.Fatalf("route classification found %d self-authenticated and %d admin routes; expected both", len(in.SelfAuthenticated), len(in.AdminPaths))
	}
	for _, p := range check(in) {
		t.Error(p)
	}
}

// TestRegisterRoutesByFunctionName backs hostRoutes' assumption that
// triggers.Register serves each function as POST /<Name>.
func TestRegisterRoutesByFunctionName(t *testing.T) {
	runs := map[string]triggers.TimerFunc{}
	msgs := map[string]triggers.MessageFunc{}
	for _, f := range triggers.Functions {
		switch f.Kind {
		case triggers.KindTimer:
			runs[f.Name] = nil
		case triggers.KindServiceBus:
			msgs[f.Name] = nil
		}
	}
	for name := range runs {
		runs[name] = func(ctx context.Context, _ *invocation.Timer) error { return nil }
	}
	timers, err := triggers.Timers(runs)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	triggers.Register(e, timers, msgs)
	var got []string
	for _, r := range e.Routes() {
		got = append(got, r.Method+" "+r.Path)
	}
	for _, f := range triggers.Functions {
		if f.Kind != triggers.KindHTTP && !slices.Contains(got, "POST /"+f.Name) {
			t.Errorf("triggers.Register does not serve %s as POST /%s; routes: %v", f.Name, f.Name, got)
		}
	}
}

// TestCheckerCatchesRemovals proves each check fires: every case breaks one
// thing in a copy of the real files and expects the problem it causes.
func TestCheckerCatchesRemovals(t *testing.T) {
	base := realInputs(t)
	const (
		app     = "infra/app/controlplane.bicep"
		storage = "infra/core/storage/storage.bicep"
		sb      = "infra/core/messaging/servicebus.bicep"
		kv      = "infra/core/security/keyvault.bicep"
		secrets = "infra/app/app-secrets.bicep"
		mainB   = "infra/main.bicep"
	)
	bicep := func(file string, edit func(string) string) func(*inputs) string {
		return func(in *inputs) string {
			before := in.Bicep[file]
			in.Bicep[file] = edit(before)
			if in.Bicep[file] == before {
				return "the edit changed nothing in " + file
			}
			return ""
		}
	}
	text := func(field *string, edit func(string) string) string {
		before := *field
		*field = edit(before)
		if *field == before {
			return "the edit changed nothing"
		}
		return ""
	}
	cases := []struct {
		name   string
		mutate func(*inputs) string // returns a message if the mutation did not apply
		want   string
	}{
		{"app setting removed", bicep(app, dropLine("COFFER_KEYVAULT_URL:")),
			"app setting COFFER_KEYVAULT_URL, read by functions/config, is not set"},
		{"Service Bus namespace setting removed", bicep(app, dropLine("COFFER_SERVICEBUS__fullyQualifiedNamespace:")),
			"COFFER_SERVICEBUS__fullyQualifiedNamespace"},
		{"binding's identity setting removed", bicep(app, dropLine("COFFER_SERVICEBUS__clientId:")),
			"app setting COFFER_SERVICEBUS__clientId, used by SendAlertEmail's Service Bus binding"},
		{"host setting removed", bicep(app, dropLine("AzureWebJobsStorage__credential:")),
			"app setting AzureWebJobsStorage__credential is not set"},
		{"local-only setting added", bicep(app, replace("    COFFER_AUTH_MODE:", "    COFFER_DEV_CLOCK: '1'\n    COFFER_AUTH_MODE:")),
			"app setting COFFER_DEV_CLOCK is set in infra/ but must not be"},
		{"worker runtime setting added", bicep(app, replace("    COFFER_AUTH_MODE:", "    FUNCTIONS_WORKER_RUNTIME: 'custom'\n    COFFER_AUTH_MODE:")),
			"app setting FUNCTIONS_WORKER_RUNTIME must not be set"},
		{"SMTP password in clear", bicep(app, replaceRE(`COFFER_SMTP_PASSWORD:.*`, "COFFER_SMTP_PASSWORD: smtpUsername")),
			"COFFER_SMTP_PASSWORD must be a Key Vault reference"},
		{"new setting in the code", func(in *inputs) string {
			return text(&in.ConfigGo, replace("\tDevClock ", "\tNewThing = \"COFFER_NEW_THING\"\n\tDevClock "))
		}, "app setting COFFER_NEW_THING, read by functions/config, is not set"},
		{"table removed", bicep(storage, dropLine("'nonces'")),
			"table nonces, used in functions/nonce/nonce.go, is not created"},
		{"table resource removed", bicep(storage, dropDecl("tables")),
			"table vaults, used in functions/registry/registry.go, is not created"},
		{"new table in the code", func(in *inputs) string {
			in.GoFiles["functions/audit/audit.go"] = `package audit; func New(s svc) { s.NewClient("audit") }`
			return ""
		}, "table audit, used in functions/audit/audit.go, is not created"},
		{"queue removed", bicep(sb, dropDecl("alertsQueue")),
			"Service Bus queue alerts (triggers.DefaultAlertsQueue, the app setting COFFER_ALERTS_QUEUE) is not created"},
		{"queue renamed away from the default", bicep(mainB, replace("var alertsQueueName = 'alerts'", "var alertsQueueName = 'alert-mail'")),
			"Service Bus queue alerts (triggers.DefaultAlertsQueue) is not created"},
		{"queue setting unresolvable", bicep(app, replace("COFFER_ALERTS_QUEUE: alertsQueueName", "COFFER_ALERTS_QUEUE: toLower(alertsQueueName)")),
			"the value infra/ sets for COFFER_ALERTS_QUEUE"},
		{"roleDefinitionId removed", bicep(sb, dropNth("roleDefinitionId:", 2)),
			"role assignment appReceiver has no properties.roleDefinitionId"},
		{"receiver role removed", bicep(sb, dropNth("roleDefinitionId:", 2)),
			"no role assignment in infra/ grants Service Bus Data Receiver"},
		{"wrong GUID", bicep(sb, replace("4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0", "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e1")),
			"uses role definition ID 4f6d3b9b-027b-4f4c-9142-0e5a2a2247e1, which is not one of the documented IDs"},
		{"owner instead of contributor", bicep(storage, replace("ba92f5b4-2d11-453d-a403-e96b0029c9fe", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b")),
			"grants Storage Blob Data Owner, more than needed"},
		{"delegate's role setting removed", bicep(app, dropLine("COFFER_KEYVAULT_MACHINE_ROLE_ID:")),
			"app setting COFFER_KEYVAULT_MACHINE_ROLE_ID, read by functions/config, is not set"},
		{"registration delegate removed", bicep(kv, dropDecl("controlPlaneRegistrationDelegate")),
			"no role assignment in infra/ grants Role Based Access Control Administrator"},
		{"Secrets Officer on the passphrase vault", bicep(kv, replace("var roleBasedAccessControlAdministrator = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'",
			"var roleBasedAccessControlAdministrator = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'")),
			"grants Key Vault Secrets Officer, more than needed"},
		{"machine role may delete", bicep(kv, replace("  'Microsoft.KeyVault/vaults/secrets/readMetadata/action'\n",
			"  'Microsoft.KeyVault/vaults/secrets/readMetadata/action'\n  'Microsoft.KeyVault/vaults/secrets/delete'\n")),
			"role definition machinePassphraseRole: dataActions are"},
		{"machine role by wildcard", bicep(kv, replace("'Microsoft.KeyVault/vaults/secrets/getSecret/action'", "'Microsoft.KeyVault/vaults/secrets/*'")),
			"role definition machinePassphraseRole: dataActions are"},
		{"machine role gets a control-plane action", bicep(kv, replace("        actions: []", "        actions: ['Microsoft.KeyVault/vaults/read']")),
			"actions must be []"},
		{"purge protection off", bicep(kv, replace("enablePurgeProtection: true", "enablePurgeProtection: false")),
			"must set enablePurgeProtection: true"},
		{"delegate unconditioned", bicep(kv, dropLine("condition: delegateCondition")),
			"its ABAC condition must contain"},
		{"delegate may assign any role", bicep(kv, replace("GuidEquals {${machinePassphraseRole.name}} AND @Request", "GuidNotEquals {${machinePassphraseRole.name}} AND @Request")),
			"to write only the machine passphrase role"},
		{"delegate may assign to itself", bicep(kv, replace(" AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAllValues:GuidNotEquals {${controlPlanePrincipalId}}", "")),
			"never assign to itself"},
		{"delegate may assign to users", bicep(kv, replace("StringEqualsIgnoreCase {\\'ServicePrincipal\\'}", "StringEqualsIgnoreCase {\\'ServicePrincipal\\', \\'User\\'}")),
			"assign only to service principals"},
		{"delegate may delete any assignment", bicep(kv, replace("(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${machinePassphraseRole.name}})", "true")),
			"delete only assignments of the machine passphrase role"},
		{"delegate on the resource group", bicep(kv, replace("  scope: vault\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleBasedAccessControlAdministrator)",
			"  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleBasedAccessControlAdministrator)")),
			"must be scoped to the passphrase vault"},
		{"role renamed away from the agent's name", bicep(kv, replace("roleName: 'Coffer Machine Passphrase (", "roleName: 'Passphrase (")),
			"roleName must start with"},
		{"Secrets User on the vault", bicep(secrets, replace("scope: secret\n", "scope: vault\n")),
			"must be scoped to the one secret"},
		{"role without a reason", bicep(storage, dropCommentAbove("resource appTableDataContributor")),
			"role assignment appTableDataContributor has no // comment"},
		{"function folder without a function", func(in *inputs) string {
			in.FunctionJSON["Ghost"] = in.FunctionJSON["MonitorBackups"]
			return ""
		}, "functions/host/Ghost/function.json is not in triggers.Functions"},
		{"function folder missing", func(in *inputs) string {
			delete(in.FunctionJSON, "PurgeSoftDeleted")
			return ""
		}, "function PurgeSoftDeleted (triggers.Functions) has no functions/host/PurgeSoftDeleted/function.json"},
		{"message function not registered", func(in *inputs) string {
			return text(&in.AppGo, replace("triggers.FuncSendAlertEmail: a.handleAlert", `"Other": a.handleAlert`))
		}, "function SendAlertEmail is not a route the handler registers"},
		{"runtime not custom", bicep(app, replace("name: 'custom'", "name: 'go'")),
			"runtime.name 'custom'"},
		{"agent path not excluded", bicep(app, dropLine("'/api/v1/register'")),
			"route /api/v1/register authenticates agents itself but is not in authsettingsV2's excludedPaths"},
		{"admin routes excluded", bicep(app, replace("'/api/v1/agent/*'", "'/api/v1/*'")),
			"lets unauthenticated requests reach admin route /api/v1/vaults"},
		{"login page instead of 401", bicep(app, replace("'Return401'", "'RedirectToLoginPage'")),
			"unauthenticatedClientAction must be 'Return401'"},
		{"azure.yaml deploys the folder, not the zip", func(in *inputs) string {
			return text(&in.AzureYAML, replace("dist: dist/functions.zip", "dist: dist/functions"))
		}, `services.controlplane.dist is "dist/functions", but ` + "`make package` writes \"dist/functions.zip\""},
		{"Makefile packages elsewhere", func(in *inputs) string {
			return text(&in.Makefile, func(s string) string { return strings.ReplaceAll(s, "dist/functions", "out/fn") })
		}, `but ` + "`make package` writes \"out/fn.zip\""},
		{"Makefile leaves the zip to azd", func(in *inputs) string {
			return text(&in.Makefile, dropLine("funczip -dir"))
		}, "does not zip dist/functions with functions/cmd/funczip"},
		{"prepackage hook no longer packages", func(in *inputs) string {
			return text(&in.AzureYAML, replaceNth("run: make package", "run: make build", 1))
		}, "hooks.prepackage.posix.run is \"make build\""},
		{"service renamed in azure.yaml", func(in *inputs) string {
			return text(&in.AzureYAML, replace("  controlplane:", "  api:"))
		}, `azure.yaml has no service "controlplane"`},
		{"parameter not passed", func(in *inputs) string {
			return text(&in.ParametersJSON, replaceRE(`(?s)"softDeleteDays": \{.*?\},\s*`, ""))
		}, "does not pass parameter softDeleteDays"},
		{"abbreviation missing", func(in *inputs) string {
			return text(&in.AbbreviationsJSON, dropLine(`"serviceBusNamespaces"`))
		}, "uses abbrs.serviceBusNamespaces, which infra/abbreviations.json does not define"},
		{"output missing", bicep(mainB, dropLine("output KEYVAULT_URL ")),
			"infra/main.bicep has no output KEYVAULT_URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			in.Bicep = maps.Clone(base.Bicep)
			in.GoFiles = maps.Clone(base.GoFiles)
			in.FunctionJSON = maps.Clone(base.FunctionJSON)
			if msg := c.mutate(&in); msg != "" {
				t.Fatalf("mutation did not apply: %s", msg)
			}
			got := check(in)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("no problem containing %q; got:\n  %s", c.want, strings.Join(got, "\n  "))
			}
		})
	}
}

// Edits for the mutation cases.

func dropLine(substr string) func(string) string {
	return func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, substr) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
}

func dropNth(substr string, n int) func(string) string {
	return func(s string) string {
		lines := strings.Split(s, "\n")
		seen := 0
		for i, l := range lines {
			if strings.Contains(l, substr) {
				if seen++; seen == n {
					return strings.Join(append(lines[:i:i], lines[i+1:]...), "\n")
				}
			}
		}
		return s
	}
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func replaceNth(old, new string, n int) func(string) string {
	return func(s string) string {
		i := -1
		for k := 0; k < n; k++ {
			j := strings.Index(s[i+1:], old)
			if j < 0 {
				return s
			}
			i += 1 + j
		}
		return s[:i] + new + s[i+len(old):]
	}
}

func replaceRE(expr, repl string) func(string) string {
	re := regexp.MustCompile(expr)
	return func(s string) string { return re.ReplaceAllString(s, repl) }
}

// dropDecl removes `resource <symbol> ...` through its closing bracket.
func dropDecl(symbol string) func(string) string {
	return func(s string) string {
		f := newBicepFile("x.bicep", s)
		for _, d := range f.decls() {
			if d.symbol == symbol {
				end := closing(f.masked, strings.IndexAny(f.masked[d.start:], "{[")+d.start)
				return s[:d.start] + s[end+1:]
			}
		}
		return s
	}
}

// dropCommentAbove removes the // lines directly above the line starting with prefix.
func dropCommentAbove(prefix string) func(string) string {
	return func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				j := i
				for j > 0 && strings.HasPrefix(strings.TrimSpace(lines[j-1]), "//") {
					j--
				}
				return strings.Join(append(lines[:j:j], lines[i:]...), "\n")
			}
		}
		return s
	}
}

// TestAppRolesMatchTheAPI checks app-roles.json, the app roles the Entra
// app registration declares, against the API: each role the API gives a
// meaning is declared, enabled, once, with its own ID, and the API reads
// each declared value. Backup.SecurityAdmin approves multi-user
// authorization requests beside the Reader/Operator/Contributor rank,
// never above it, and only a user holds it (a service principal's token
// could be anyone's script).
func TestAppRolesMatchTheAPI(t *testing.T) {
	b, err := os.ReadFile("app-roles.json")
	if err != nil {
		t.Fatal(err)
	}
	var roles []struct {
		ID                 string   `json:"id"`
		Value              string   `json:"value"`
		AllowedMemberTypes []string `json:"allowedMemberTypes"`
		IsEnabled          bool     `json:"isEnabled"`
	}
	if err := json.Unmarshal(b, &roles); err != nil {
		t.Fatalf("app-roles.json: %v", err)
	}
	want := map[string]api.Principal{
		"Backup.Reader":        {Role: api.RoleReader},
		"Backup.Operator":      {Role: api.RoleOperator},
		"Backup.Contributor":   {Role: api.RoleContributor},
		"Backup.SecurityAdmin": {Role: api.RoleReader, SecurityAdmin: true},
	}
	ids, seen := map[string]bool{}, map[string]bool{}
	for _, r := range roles {
		if ids[r.ID] || seen[r.Value] || !r.IsEnabled {
			t.Errorf("app role %s (%s): IDs and values must be unique and every role enabled", r.Value, r.ID)
		}
		ids[r.ID], seen[r.Value] = true, true
		w, ok := want[r.Value]
		if !ok {
			t.Errorf("app-roles.json declares %s, which the API gives no meaning", r.Value)
			continue
		}
		claims, _ := json.Marshal(map[string]any{"auth_typ": "aad", "name_typ": "name", "role_typ": "roles",
			"claims": []map[string]string{{"typ": "name", "val": "ann"}, {"typ": "roles", "val": r.Value}}})
		p, err := api.ParsePrincipal(base64.StdEncoding.EncodeToString(claims))
		if err != nil || p.Role != w.Role || p.SecurityAdmin != w.SecurityAdmin {
			t.Errorf("the API reads app role %s as %+v (%v), want %+v", r.Value, p, err, w)
		}
		if r.Value == "Backup.SecurityAdmin" && !slices.Equal(r.AllowedMemberTypes, []string{"User"}) {
			t.Errorf("Backup.SecurityAdmin is for people of another team only, got member types %v", r.AllowedMemberTypes)
		}
	}
	for v := range want {
		if !seen[v] {
			t.Errorf("app-roles.json does not declare %s", v)
		}
	}
}
