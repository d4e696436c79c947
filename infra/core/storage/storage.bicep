// The storage account: the control plane's tables, the Flex Consumption
// deployment container, the Functions host's own blobs, and one container per
// machine (coffer-<machine ID>) that the app creates at registration. Shared
// key access is off: the app uses its managed identity, and agents get
// user-delegation SAS tokens (create, read, list; at most an hour) for their
// own container only.
param name string
param location string
param tags object

@allowed(['LRS', 'ZRS', 'GRS', 'GZRS'])
param redundancy string

@description('Container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Principal ID of the control plane\'s managed identity.')
param appPrincipalId string

// Every table the control plane uses (functions/**: NewClient("...") and
// jobs.TableName). The app also creates them at start-up if missing; creating
// them here means a fresh deployment never depends on that. infra's Go test
// checks this list against the code.
var tableNames = [
  'vaults'
  'machines'
  'policies'
  'points'
  'jobs'
  'alerts'
  'digests'
  'pins'
  'nonces'
  'approvals'
  'usage'
]

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_${redundancy}'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled' // agents upload from branch offices over the internet
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // A safety net under Coffer's own 14-day soft delete: blobs and containers
    // the purge removes stay recoverable by an account admin for 7 more days.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tableNames: {
    parent: tableService
    name: table
  }
]

// Storage Blob Data Contributor on the account, for the app and the Functions
// host (one identity). It covers everything they do, and Storage Blob Data
// Owner (ACLs, blob index tags, ownership) adds nothing they use:
//   - the app creates a container per machine at registration and deletes it
//     at purge (containers/write, containers/delete), so the scope must be the
//     account: those containers do not exist yet;
//   - it reads refs/ lists, deletes points' objects and unreferenced packs
//     (blobs/read, blobs/delete);
//   - it gets the user delegation key that signs agents' SAS
//     (generateUserDelegationKey/action); a user-delegation SAS can never
//     grant more than this role, so agents' create/read/list stay within it;
//   - the host keeps timer schedule status, singleton locks (blob leases)
//     and its keys in blobs, and the platform reads the deployment package.
resource appBlobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageBlobDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Table Data Contributor on the account: the app reads and writes
// entities in its nine tables and creates them at start-up if they are
// missing (a table-level scope would not allow creating one), and the
// Functions host writes its diagnostic events to a table of its own.
// No Storage Queue Data Contributor: nothing here uses storage queues (the
// host needs them only for blob triggers and Durable Functions; alerts travel
// on Service Bus).
resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageTableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = account.name
// Endpoints without the trailing slash: the app hands them to agents and
// signs SAS URLs against them.
output blobEndpoint string = 'https://${account.name}.blob.${environment().suffixes.storage}'
output tableEndpoint string = 'https://${account.name}.table.${environment().suffixes.storage}'
output deploymentContainerUrl string = 'https://${account.name}.blob.${environment().suffixes.storage}/${deploymentContainer.name}'
