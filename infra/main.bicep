// Coffer's control plane for `azd up`: everything lives in one resource group,
// rg-<environment>, named with a token derived from the subscription, the
// environment and the region. See README.md in this folder for a map.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment. Names the resource group and seeds the resource token.')
param environmentName string

@minLength(1)
@description('Region for every resource. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({ azd: { type: 'location' } })
param location string

// azd passes the signed-in principal's object ID. It is deliberately granted
// nothing: azd deploys the code through the Functions publishing endpoint
// (the app's own identity writes the deployment container), the template
// writes the SMTP secret through Azure Resource Manager, and nobody needs to
// read passphrases during deployment. An admin who must read one later (to
// restore a lost machine elsewhere) gets Key Vault Secrets User explicitly,
// in the open, not as a side effect of `azd up`.
#disable-next-line no-unused-params
param principalId string = ''

@minLength(36)
@maxLength(36)
@description('Application (client) ID of the Entra ID app registration for the admin API, with the app roles in app-roles.json (Backup.Reader, Backup.Operator, Backup.Contributor and Backup.SecurityAdmin). Bicep cannot create app registrations without the Microsoft Graph extension; see README.md.')
param entraClientId string

@allowed(['LRS', 'ZRS', 'GRS', 'GZRS'])
@description('Redundancy of the storage account that holds every backup. GRS, as a Recovery Services vault defaults to.')
param storageRedundancy string = 'GRS'

@minValue(14)
@maxValue(180)
@description('Days a deleted machine or recovery point stays recoverable before the purge timer removes it (COFFER_SOFT_DELETE_DAYS).')
param softDeleteDays int = 14

@description('Silence after which a running job is failed (COFFER_STALE_JOB_AFTER, a Go duration of at least 10m).')
param staleJobAfter string = '2h'

@description('How long a multi-user authorization request can be approved by a Backup Security Admin (COFFER_APPROVAL_TTL, a Go duration from 15m to 168h).')
param approvalTtl string = '24h'

@description('SMTP relay for alert email. Empty: alerts are stored and queued, and mail waits until it is set.')
param smtpHost string = ''

@minValue(1)
@maxValue(65535)
param smtpPort int = 587

@allowed(['starttls', 'tls'])
@description('starttls (port 587) or tls (port 465). Plain SMTP is for loopback only and is not offered here.')
param smtpSecurity string = 'starttls'

param smtpUsername string = ''

@secure()
@description('SMTP password. Stored in a Key Vault of its own and read by the app through a Key Vault reference; never an app setting in clear.')
param smtpPassword string = ''

@description('Sender address of alert email.')
param smtpFrom string = ''

@allowed(['Basic', 'Standard'])
@description('Service Bus tier. Basic has queues, dead-lettering and Entra ID authorization, all Coffer needs; Standard adds topics and a monthly base charge.')
param serviceBusSku string = 'Standard'

@allowed([512, 2048, 4096])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

// Flex Consumption accepts 1 to 1000 ("the lowest maximum instance count
// value is 1", Event-driven scaling, Limit scale-out, learn.microsoft.com,
// August 2026; it was 40 in the plan's preview). A backup control plane
// needs few instances; 40 leaves room for many agents reporting at once.
@minValue(1)
@maxValue(1000)
@description('Most instances the Flex Consumption plan may scale out to (1 to 1000).')
param maximumInstanceCount int = 40

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

// The alerts queue: the app publishes to it and SendAlertEmail consumes it.
// One name, passed to both the Service Bus module and the app settings.
var alertsQueueName = 'alerts'
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'core/security/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'core/monitor/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
  }
}

module storage 'core/storage/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    redundancy: storageRedundancy
    deploymentContainerName: 'app-package-${resourceToken}'
    appPrincipalId: identity.outputs.principalId
  }
}

module serviceBus 'core/messaging/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    sku: serviceBusSku
    queueName: alertsQueueName
    appPrincipalId: identity.outputs.principalId
  }
}

module keyVault 'core/security/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    controlPlanePrincipalId: identity.outputs.principalId
  }
}

// The control plane's own secret (the SMTP password) lives in a second vault:
// in the passphrase vault the control plane is the delegate that grants
// machines their role on a secret, so a secret kept there would be one grant
// away from a machine.
var smtpSecretName = 'coffer-smtp-password'
var appSecretsVaultName = '${abbrs.keyVaultVaults}app-${resourceToken}'

module appSecrets 'app/app-secrets.bicep' = if (!empty(smtpPassword)) {
  name: 'app-secrets'
  scope: rg
  params: {
    name: appSecretsVaultName
    location: location
    tags: tags
    secretName: smtpSecretName
    secretValue: smtpPassword
    appPrincipalId: identity.outputs.principalId
  }
}

module controlPlane 'app/controlplane.bicep' = {
  name: 'controlplane'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    alertsQueueName: alertsQueueName
    keyVaultUrl: keyVault.outputs.uri
    keyVaultResourceId: keyVault.outputs.id
    keyVaultMachineRoleId: keyVault.outputs.machineRoleId
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    entraClientId: entraClientId
    smtpHost: smtpHost
    smtpPort: smtpPort
    smtpSecurity: smtpSecurity
    smtpUsername: smtpUsername
    // Built from known names so no output of the conditional module is read;
    // dependsOn below makes the secret and its role assignment exist first.
    smtpPasswordSecretUri: empty(smtpPassword) ? '' : 'https://${appSecretsVaultName}${environment().suffixes.keyvaultDns}/secrets/${smtpSecretName}'
    smtpFrom: smtpFrom
    softDeleteDays: softDeleteDays
    staleJobAfter: staleJobAfter
    approvalTtl: approvalTtl
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
  dependsOn: [
    appSecrets
  ]
}

// azd stores every output in the environment (azd env get-values).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = controlPlane.outputs.name
output CONTROL_PLANE_URL string = controlPlane.outputs.url
output KEYVAULT_URL string = keyVault.outputs.uri
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output KEYVAULT_MACHINE_ROLE_ID string = keyVault.outputs.machineRoleId
output KEYVAULT_MACHINE_ROLE_NAME string = keyVault.outputs.machineRoleName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output ENTRA_CLIENT_ID string = entraClientId
