// The control plane's user-assigned managed identity. Every Azure client in
// the app and in the Functions host uses it; no keys or connection strings
// exist anywhere. Each role it holds is assigned, with its reason, in the
// module of the resource it applies to.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
