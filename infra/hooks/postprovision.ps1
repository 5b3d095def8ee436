# azd postprovision hook (azure.yaml): print where the app is and what to do next. Reads the deployment's
# outputs with `azd env get-values` (only the names below; nothing is evaluated, no secret is printed).
$ErrorActionPreference = 'Stop'

$values = @{}
foreach ($line in (azd env get-values)) {
    if ($line -match '^([A-Za-z_][A-Za-z0-9_]*)="?(.*?)"?$') {
        $values[$Matches[1]] = $Matches[2]
    }
}

$group = $values['AZURE_RESOURCE_GROUP']
$app = $values['SERVICE_API_NAME']
$hostName = $values['SERVICE_API_HOST']
$vault = $values['AZURE_KEY_VAULT_NAME']
$storage = $values['AZURE_STORAGE_ACCOUNT_NAME']
$envName = $values['AZURE_ENV_NAME']
$region = $values['DEFAULT_PHONE_REGION']
if (-not $region) { $region = 'US' }  # main.parameters.json's default
$tableOption = if ($values['DO_NOT_CALL_TABLE']) { " --table $($values['DO_NOT_CALL_TABLE']) --create-table" } else { '' }
if (-not $hostName -and $app) { $hostName = "$app.azurewebsites.net" }

Write-Host @"

Genesys outbound-call function: provisioned (azd deploy, or the rest of azd up, ships the code)

  Function URL     https://$hostName/api/calls
  Readiness        https://$hostName/api/health/ready   (needs the function key; 503 lists what to fix)
  Liveness         https://$hostName/api/health         (anonymous)

  Function key     az functionapp keys list -g $group -n $app --query functionKeys.default -o tsv
  Check readiness  curl.exe -s -H "x-functions-key: <key>" https://$hostName/api/health/ready

  Power Automate   bash scripts/export-connector.sh --host $hostName --out build/connector/$envName/apiDefinition.swagger.json
                   then import it with connector/apiProperties.json (docs/deploy.md "Connect Power Automate")

  Secrets          Key Vault ${vault}: genesys-client-secret (and webhook-secret when set);
                   rotate with az keyvault secret set --vault-name $vault --name genesys-client-secret --file <file>

  Do-not-call list `$env:AzureWebJobsStorage__accountName='$storage'; .venv\Scripts\python scripts/import_do_not_call.py <list.csv> --region $region$tableOption
                   (signed in with az login; with VNET_ENABLED=true from inside the virtual network;
                   one number: PUT /api/do-not-call/{number} with the master key)

Role assignments can take a few minutes to reach the app: a first readiness answer of 503 key_vault_forbidden
or idempotency_store_unavailable right after provisioning usually clears on its own. The same delay can fail
the first deploy (403 or InaccessibleStorageException uploading the package with the app's identity): wait a
minute and run azd deploy again.
"@
