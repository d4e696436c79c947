// The control plane: coffer-functions, a Go custom handler, on the Flex
// Consumption plan, with every app setting it reads, and App Service
// Authentication (Entra ID) in front of the admin API.
param name string
param planName string
param location string
param tags object

@description('Resource ID of the user-assigned managed identity.')
param identityId string
@description('Client ID of the user-assigned managed identity.')
param identityClientId string

param storageAccountName string
param blobEndpoint string
param tableEndpoint string
@description('URL of the blob container Flex Consumption deploys the package from.')
param deploymentContainerUrl string

@description('Fully qualified Service Bus namespace, <name>.servicebus.windows.net.')
param serviceBusNamespace string
param alertsQueueName string

@description('The passphrase vault\'s URL, handed to agents.')
param keyVaultUrl string

@description('The passphrase vault\'s resource ID and the machine passphrase role\'s ID: at registration the app assigns the machine\'s Key Vault identity that role on the machine\'s secret.')
param keyVaultResourceId string
param keyVaultMachineRoleId string

param applicationInsightsConnectionString string

@description('Application (client) ID of the admin API\'s Entra ID app registration.')
param entraClientId string

param smtpHost string
param smtpPort int
param smtpSecurity string
param smtpUsername string
@description('Versionless URI of the SMTP password secret, or empty for none.')
param smtpPasswordSecretUri string
param smtpFrom string

param softDeleteDays int
param staleJobAfter string
param approvalTtl string
param instanceMemoryMB int
param maximumInstanceCount int

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2023-12-01' = {
  name: name
  location: location
  // azd finds the app to deploy the `controlplane` service (azure.yaml) to by this tag.
  tags: union(tags, { 'azd-service-name': 'controlplane' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references (COFFER_SMTP_PASSWORD) resolve with this identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      // A custom handler. On Flex Consumption this replaces the
      // FUNCTIONS_WORKER_RUNTIME=custom app setting, which the plan refuses.
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// Every setting functions/config reads in Azure, plus the host's own. infra's
// Go test checks this list against functions/config.
resource appSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // The host's storage (timer status, singleton locks, keys), with the identity.
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId

    // Telemetry, authenticated with the identity (local auth is disabled).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

    // Storage endpoints reached with the identity; SAS are user-delegation SAS.
    COFFER_STORAGE_BLOB_ENDPOINT: blobEndpoint
    COFFER_STORAGE_TABLE_ENDPOINT: tableEndpoint

    // Service Bus. The handler reads __fullyQualifiedNamespace; the host's
    // SendAlertEmail binding (connection COFFER_SERVICEBUS) reads all three,
    // and without __credential and __clientId it would try a system-assigned
    // identity, which this app does not have.
    COFFER_SERVICEBUS__fullyQualifiedNamespace: serviceBusNamespace
    COFFER_SERVICEBUS__credential: 'managedidentity'
    COFFER_SERVICEBUS__clientId: identityClientId
    // Also %COFFER_ALERTS_QUEUE% in SendAlertEmail's binding: the host will
    // not index the function without it.
    COFFER_ALERTS_QUEUE: alertsQueueName

    COFFER_KEYVAULT_URL: keyVaultUrl
    // The registration delegate: where machines' role assignments go, and
    // the one role it may assign (keyvault.bicep's condition enforces it).
    COFFER_KEYVAULT_RESOURCE_ID: keyVaultResourceId
    COFFER_KEYVAULT_MACHINE_ROLE_ID: keyVaultMachineRoleId
    COFFER_PUBLIC_URL: 'https://${site.properties.defaultHostName}'
    AZURE_TENANT_ID: tenant().tenantId
    AZURE_CLIENT_ID: identityClientId
    COFFER_AUTH_MODE: 'appservice'

    COFFER_SMTP_HOST: smtpHost
    COFFER_SMTP_PORT: string(smtpPort)
    COFFER_SMTP_SECURITY: smtpSecurity
    COFFER_SMTP_USERNAME: smtpUsername
    COFFER_SMTP_PASSWORD: empty(smtpPasswordSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${smtpPasswordSecretUri})'
    COFFER_SMTP_FROM: smtpFrom

    COFFER_STALE_JOB_AFTER: staleJobAfter
    COFFER_SOFT_DELETE_DAYS: string(softDeleteDays)
    COFFER_APPROVAL_TTL: approvalTtl
  }
}

// App Service Authentication: admins sign in with Entra ID and their app
// roles (Backup.Reader, Backup.Operator, Backup.Contributor, and beside them
// Backup.SecurityAdmin, who approves multi-user authorization requests;
// declared in app-roles.json) reach the API in
// X-MS-CLIENT-PRINCIPAL. Unauthenticated requests get 401, except on the paths
// agents use: agents have no Entra token for this app; they sign every request
// with their machine key, and the handler verifies the signature itself.
resource auth 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // Exact paths, plus one trailing-wildcard prefix. App Service matches
      // an entry ending in /* as a prefix; it has no other wildcards, and the
      // agent routes include parameters (/agent/jobs/{job}), so they cannot
      // be listed one by one. The prefix covers nothing but agent routes,
      // which all go through the handler's signature check; admin routes stay
      // behind Entra ID, and the handler still refuses an admin request that
      // carries no validated principal. infra's Go test checks this list
      // against the routes the handler authenticates itself.
      excludedPaths: [
        '/api/v1/agent/*'
        '/api/v1/register'
        '/api/v1/health'
      ]
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          // Single tenant: only this tenant's tokens are accepted.
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
          clientId: entraClientId
        }
        validation: {
          // v2 access tokens carry the client ID as audience, v1 tokens the
          // application ID URI.
          allowedAudiences: [
            entraClientId
            'api://${entraClientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false // an API: bearer tokens only, no sessions to store
      }
    }
  }
  dependsOn: [
    appSettings // one configuration update of the site at a time
  ]
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
