#!/bin/sh
# azd postprovision hook (azure.yaml): print where the app is and what to do next. Reads the deployment's
# outputs with `azd env get-values` (only the names below; nothing is evaluated, no secret is printed).
set -eu

values=$(azd env get-values)
value() {
    printf '%s\n' "$values" | sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" | head -n 1
}

group=$(value AZURE_RESOURCE_GROUP)
app=$(value SERVICE_API_NAME)
host=$(value SERVICE_API_HOST)
vault=$(value AZURE_KEY_VAULT_NAME)
storage=$(value AZURE_STORAGE_ACCOUNT_NAME)
env_name=$(value AZURE_ENV_NAME)
region=$(value DEFAULT_PHONE_REGION)
region=${region:-US}  # main.parameters.json's default
table=$(value DO_NOT_CALL_TABLE)  # empty: the import script's default, the app's (donotcall)
if [ -z "$host" ] && [ -n "$app" ]; then
    host="$app.azurewebsites.net"
fi

cat <<INFO

Genesys outbound-call function: provisioned (azd deploy, or the rest of azd up, ships the code)

  Function URL     https://$host/api/calls
  Readiness        https://$host/api/health/ready   (needs the function key; 503 lists what to fix)
  Liveness         https://$host/api/health         (anonymous)

  Function key     az functionapp keys list -g $group -n $app --query functionKeys.default -o tsv
  Check readiness  curl -s -H "x-functions-key: \$(az functionapp keys list -g $group -n $app --query functionKeys.default -o tsv)" https://$host/api/health/ready

  Power Automate   scripts/export-connector.sh --host $host --out build/connector/$env_name/apiDefinition.swagger.json
                   then import it with connector/apiProperties.json (docs/deploy.md "Connect Power Automate")

  Secrets          Key Vault $vault: genesys-client-secret (and webhook-secret when set);
                   rotate with az keyvault secret set --vault-name $vault --name genesys-client-secret --file <file>

  Do-not-call list AzureWebJobsStorage__accountName=$storage .venv/bin/python scripts/import_do_not_call.py <list.csv> --region $region${table:+ --table $table --create-table}
                   (signed in with az login; with VNET_ENABLED=true from inside the virtual network;
                   one number: PUT /api/do-not-call/{number} with the master key)

Role assignments can take a few minutes to reach the app: a first readiness answer of 503 key_vault_forbidden
or idempotency_store_unavailable right after provisioning usually clears on its own. The same delay can fail
the first deploy (403 or InaccessibleStorageException uploading the package with the app's identity): wait a
minute and run azd deploy again.
INFO
