package points

import "github.com/Azure/azure-sdk-for-go/sdk/azcore"

func azETag(s string) azcore.ETag { return azcore.ETag(s) }
