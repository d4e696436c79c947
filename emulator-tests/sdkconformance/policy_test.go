package sdkconformance

import "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

var policyOptions = policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}
