// The passphrase vault. Each agent escrows its machine's passphrase here as
// secret coffer-passphrase-<machine ID>, a new version on every change, and
// fetches it with its own identity.
//
// Least privilege (docs/security.md, "Key Vault roles"):
//   - Each machine's identity holds the custom role below, Coffer Machine
//     Passphrase (get, set and read metadata of secrets, nothing else), at
//     the scope of its own secret only: <vault>/secrets/coffer-passphrase-<id>.
//     A compromised machine can neither read, nor add versions to, nor delete
//     another machine's passphrase, and cannot delete or purge its own.
//   - Those per-secret assignments are made at registration by a delegate:
//     the control plane's identity, allowed by an ABAC condition to create
//     and delete assignments of that one role, to service principals other
//     than itself, under this vault only. It holds no data action here, so
//     it never reads, writes or deletes a passphrase.
//   - Nobody holds a vault-wide role from this template.
param name string
param location string
param tags object

@description('Principal ID of the control plane\'s managed identity: the registration delegate, which may assign the machine passphrase role and nothing else.')
param controlPlanePrincipalId string

// Role Based Access Control Administrator: manages role assignments only
// (no data actions, no other resource writes); the condition below narrows
// it to one role.
var roleBasedAccessControlAdministrator = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'

// The only data actions a machine needs on its own secret: setSecret to
// escrow (create, and a new version per passphrase change), getSecret to
// fetch it for backups and restores, readMetadata to list its versions when
// an earlier one must be found. Equal to keyvault.MachinePassphraseDataActions
// (the emulator enforces the same list; infra's consistency test checks it).
var machinePassphraseDataActions = [
  'Microsoft.KeyVault/vaults/secrets/getSecret/action'
  'Microsoft.KeyVault/vaults/secrets/setSecret/action'
  'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Azure RBAC only, no access policies: per-secret role assignments
    // exist only under RBAC.
    enableRbacAuthorization: true
    // A deleted secret (or vault) stays recoverable for 90 days, and purge
    // protection means nobody, not even an owner, can purge it sooner: a
    // compromised machine or admin cannot destroy the passphrases that make
    // the backups readable.
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled' // agents reach it from branch offices
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Coffer Machine Passphrase: assignable in this resource group, assigned
// only at the scope of one secret. Its name carries the vault's (globally
// unique) name because custom role names are unique per tenant.
resource machinePassphraseRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'coffer-machine-passphrase')
  properties: {
    roleName: 'Coffer Machine Passphrase (${name})'
    description: 'A Coffer machine\'s access to its own passphrase secret: get, set (new versions) and read metadata. Assign at <vault>/secrets/coffer-passphrase-<machine ID> only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: machinePassphraseDataActions
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

// The ABAC condition of the registration delegate, in Azure's "constrain
// roles and principal types" form: it may write role assignments only of
// the machine passphrase role, only to service principals (machines'
// managed identities and service principals), never to itself; and delete
// only assignments of that role.
var delegateCondition = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${machinePassphraseRole.name}} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAllValues:GuidNotEquals {${controlPlanePrincipalId}})) AND ((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${machinePassphraseRole.name}}))'

// Role Based Access Control Administrator on this vault for the control
// plane, conditioned as above: at registration it assigns the new machine's
// identity the machine passphrase role on that machine's secret (and removes
// it when the machine's data is purged). The condition keeps it from
// granting any other role, or this one to itself, so the control plane still
// cannot read a passphrase; it holds no Key Vault data action.
resource controlPlaneRegistrationDelegate 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, controlPlanePrincipalId, roleBasedAccessControlAdministrator)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleBasedAccessControlAdministrator)
    principalId: controlPlanePrincipalId
    principalType: 'ServicePrincipal'
    conditionVersion: '2.0'
    condition: delegateCondition
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output id string = vault.id
output machineRoleId string = machinePassphraseRole.name
output machineRoleName string = machinePassphraseRole.properties.roleName
