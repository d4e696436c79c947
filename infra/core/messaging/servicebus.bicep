// Service Bus: the alerts queue. The control plane publishes an alert after
// storing it; SendAlertEmail (a Service Bus trigger) emails it. Local (SAS key)
// authentication is off; the app and the host use the managed identity.
param name string
param location string
param tags object

@allowed(['Basic', 'Standard'])
param sku string

@description('The alerts queue: COFFER_ALERTS_QUEUE and %COFFER_ALERTS_QUEUE% in SendAlertEmail\'s binding.')
param queueName string

@description('Principal ID of the control plane\'s managed identity.')
param appPrincipalId string

var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource alertsQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: queueName
  properties: {
    // The local stack's emulator runs the same queue settings
    // (emulator-tests/servicebus/config.json, queue "alerts"), so retries,
    // expiry and dead-lettering behave locally as deployed;
    // infra/alertsqueue_test.go holds the two equal. No duplicate detection:
    // Basic lacks it, and a republished alert may be emailed twice
    // (functions/alerts, Raise).
    // A failed email answers 500, the host abandons the message, and the
    // broker redelivers it; after 10 deliveries it is dead-lettered, never
    // dropped. Poison messages take the same path (a custom handler cannot
    // dead-letter directly).
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    // 14 days, the most the Basic tier allows; an alert older than that is
    // dead-lettered rather than lost.
    defaultMessageTimeToLive: 'P14D'
    deadLetteringOnMessageExpiration: true
    requiresSession: false
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

// Azure Service Bus Data Sender on the alerts queue only: the app publishes
// alerts (and republishes those Service Bus did not take). Scoped to the queue,
// not the namespace, so no other entity can be written.
resource appSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertsQueue.id, appPrincipalId, serviceBusDataSender)
  scope: alertsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Azure Service Bus Data Receiver on the alerts queue only: the host's
// SendAlertEmail trigger receives, completes and abandons messages with the
// identity. Not Data Owner: Owner would let the scale controller read the
// exact queue length (a management operation); without it the Service Bus
// extension estimates by peeking, which is ample for a queue of alerts, and
// Owner would also allow deleting the queue.
resource appReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertsQueue.id, appPrincipalId, serviceBusDataReceiver)
  scope: alertsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = namespace.name
// <name>.servicebus.windows.net (or the sovereign cloud's suffix), from
// https://<name>.servicebus.windows.net:443/
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0]
output queueName string = alertsQueue.name
