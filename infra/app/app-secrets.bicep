// The control plane's own secrets vault, holding the SMTP password and
// nothing else. It is separate from the passphrase vault because there the
// control plane is the delegate that grants machines a role on a secret.
// Deployed only when an SMTP password is given.
param name string
param location string
param tags object
param secretName string

@secure()
param secretValue string

@description('Principal ID of the control plane\'s managed identity.')
param appPrincipalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

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
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // No purge protection: the SMTP password can be set again at any time,
    // and `azd down --purge` should be able to remove this vault.
    publicNetworkAccess: 'Enabled'
  }
}

// Written through Azure Resource Manager, so the deploying principal needs no
// data-plane role on the vault.
resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: secretValue
    contentType: 'text/plain; SMTP password for Coffer alert email'
  }
}

// Key Vault Secrets User on this one secret, not the vault: App Service
// resolves the COFFER_SMTP_PASSWORD Key Vault reference with the app's
// identity (keyVaultReferenceIdentity), which must read the secret's value.
// The handler itself never calls Key Vault.
resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(secret.id, appPrincipalId, keyVaultSecretsUser)
  scope: secret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// No outputs: main.bicep builds the versionless secret URI from the names,
// so the app module never reads an output of this conditional module.
