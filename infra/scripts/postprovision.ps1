# azd postprovision hook (azure.yaml); the same as postprovision.sh, for
# Windows. App Service resolves a Key Vault reference when the app setting is
# written or the app restarts; if the app identity's Key Vault Secrets User
# assignment on the SMTP secret had not propagated yet, COFFER_SMTP_PASSWORD
# stays unresolved until the next restart. So: when an SMTP password is set,
# restart the app until App Service reports the reference Resolved, for up to
# about five minutes.
$ErrorActionPreference = 'Continue'
if (-not $env:SMTP_PASSWORD) { exit 0 }
foreach ($v in 'AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME') {
  if (-not [Environment]::GetEnvironmentVariable($v)) {
    Write-Error "postprovision: $v is not set; run this from azd (azd provision)"
    exit 1
  }
}
$app = $env:AZURE_FUNCTION_APP_NAME
$rg = $env:AZURE_RESOURCE_GROUP
$url = "https://management.azure.com/subscriptions/$($env:AZURE_SUBSCRIPTION_ID)/resourceGroups/$rg/providers/Microsoft.Web/sites/$app/config/configreferences/appsettings/COFFER_SMTP_PASSWORD?api-version=2023-12-01"
$status = 'unknown'
for ($i = 0; $i -lt 10; $i++) {
  $status = az rest --method get --url $url --query properties.status --output tsv 2>$null
  if (-not $status) { $status = 'unknown' }
  if ($status -eq 'Resolved') {
    Write-Host "postprovision: the SMTP password's Key Vault reference is resolved"
    exit 0
  }
  Write-Host "postprovision: the SMTP password's Key Vault reference is $status; restarting $app so App Service reads it again"
  az functionapp restart --resource-group $rg --name $app --output none
  Start-Sleep -Seconds 30
}
Write-Warning "postprovision: the SMTP password's Key Vault reference is still $status after 5 minutes. Alert email cannot log in until it resolves; alerts stay queued and are retried. Check the app identity's Key Vault Secrets User role on the secret, then run: az functionapp restart -g $rg -n $app"
exit 0
