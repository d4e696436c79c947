// The passphrase vault. Each agent escrows its machine's passphrase here as
// secret coffer-passphrase-<machine ID>, a new version on every change, and
// fetches it with its own identity. The control plane only hands out this
// vault's URL: it holds no role here and never sees a passphrase.
param name string
param location string
param tags object

@description('Object ID of the Entra ID group of agent identities. Empty: no role assignment.')
param agentsGroupObjectId string = ''

var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

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
    // Azure RBAC only, no access policies.
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

// Key Vault Secrets Officer on this vault for the agents' group: each agent
// creates its passphrase secret at registration, adds versions when the
// passphrase changes, and reads it for backups and restores (including
// another machine's, for a cross-machine restore). The secrets do not exist
// at deployment, so no narrower (per-secret) scope is possible here, and no
// built-in role allows set and get without the rest of the secret lifecycle.
// Deletes it also allows are recoverable for 90 days (purge protection).
// It grants no access to keys, certificates or the vault's configuration.
resource agentsSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(agentsGroupObjectId)) {
  name: guid(vault.id, agentsGroupObjectId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: agentsGroupObjectId
    principalType: 'Group'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
