#!/bin/sh
# azd postprovision hook (azure.yaml). App Service resolves a Key Vault
# reference when the app setting is written or the app restarts; if the app
# identity's Key Vault Secrets User assignment on the SMTP secret had not
# propagated yet, COFFER_SMTP_PASSWORD stays unresolved (and alert email
# fails to log in) until the next restart. So: when an SMTP password is set,
# ask App Service for the reference's status, and restart the app until it
# reads Resolved, for up to about five minutes.
set -u
if [ -z "${SMTP_PASSWORD:-}" ]; then
  exit 0 # no Key Vault reference to check
fi
for v in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME; do
  eval "val=\${$v:-}"
  if [ -z "$val" ]; then
    echo "postprovision: $v is not set; run this from azd (azd provision)" >&2
    exit 1
  fi
done
url="https://management.azure.com/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.Web/sites/$AZURE_FUNCTION_APP_NAME/config/configreferences/appsettings/COFFER_SMTP_PASSWORD?api-version=2023-12-01"
tries=10
wait=${COFFER_POSTPROVISION_WAIT:-30} # seconds between tries; tests shorten it
status=unknown
while [ "$tries" -gt 0 ]; do
  status=$(az rest --method get --url "$url" --query properties.status --output tsv 2>/dev/null || echo unknown)
  if [ "$status" = "Resolved" ]; then
    echo "postprovision: the SMTP password's Key Vault reference is resolved"
    exit 0
  fi
  echo "postprovision: the SMTP password's Key Vault reference is $status; restarting $AZURE_FUNCTION_APP_NAME so App Service reads it again"
  az functionapp restart --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" --output none || true
  tries=$((tries - 1))
  sleep "$wait"
done
echo "postprovision: WARNING: the SMTP password's Key Vault reference is still $status after 5 minutes." >&2
echo "  Alert email cannot log in until it resolves; alerts stay queued and are retried. Check the app identity's" >&2
echo "  Key Vault Secrets User role on the secret, then run: az functionapp restart -g $AZURE_RESOURCE_GROUP -n $AZURE_FUNCTION_APP_NAME" >&2
exit 0
