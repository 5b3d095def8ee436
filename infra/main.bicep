// The Genesys outbound-call function app on Azure Functions Flex Consumption, deployed with `azd up`.
// Structure and module versions follow Azure-Samples/functions-quickstart-python-http-azd; what this template
// adds: Key Vault (RBAC, soft delete, purge protection) holding the Genesys client secret, identity-based
// Blob, Queue and Table connections, and the app's own settings. One user-assigned identity does everything;
// no storage key, connection string with a key, or secret value reaches an app setting or an output.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to generate a short unique hash used in all resource names.')
param environmentName string

@minLength(1)
@description('Primary location for all resources (a region where Flex Consumption is available).')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'eastus2euap'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Put the app in a virtual network and reach storage and Key Vault only through private endpoints.')
param vnetEnabled bool = false

param apiServiceName string = ''
param apiUserAssignedIdentityName string = ''
param applicationInsightsName string = ''
param appServicePlanName string = ''
param keyVaultName string = ''
param logAnalyticsName string = ''
param resourceGroupName string = ''
param storageAccountName string = ''
param vNetName string = ''

@description('Object id of the person (or pipeline) running azd: gets Key Vault Secrets Officer on the vault, to rotate secrets. Leave empty to grant nothing.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

// ---- Genesys Cloud and call policy: the app settings the function reads (README "Configuration") ----

@minLength(1)
@description('GENESYS_REGION: region domain (mypurecloud.com, usw2.pure.cloud, ...) or SDK name (us_east_1).')
param genesysRegion string

@minLength(1)
@description('GENESYS_CLIENT_ID: OAuth client id (Client Credentials grant).')
param genesysClientId string

@secure()
@description('The Genesys OAuth client secret. Written to Key Vault as genesys-client-secret, never to an app setting or output. Empty: the vault secret is left as it is (set or rotated with az keyvault secret set).')
param genesysClientSecret string = ''

@description('GENESYS_CALL_USER_ID: Genesys user id (a UUID) on whose behalf calls are placed.')
param genesysCallUserId string = ''

@description('ALLOWED_USER_IDS: comma-separated Genesys user ids a request may name, or *. Empty: only GENESYS_CALL_USER_ID.')
param allowedUserIds string = ''

@description('ALLOWED_QUEUE_IDS: comma-separated Genesys queue ids a request may name, or *. Empty: no queue.')
param allowedQueueIds string = ''

@description('DEFAULT_CALLER_ID: caller ID when a request has no from and no queue caller ID.')
param defaultCallerId string = ''

@description('ALLOWED_CALLER_IDS: comma-separated caller IDs, any format.')
param allowedCallerIds string = ''

@description('CALLER_ID_SOURCE: settings (ALLOWED_CALLER_IDS), genesys (the org DIDs) or both.')
@allowed([
  'settings'
  'genesys'
  'both'
])
param callerIdSource string = 'settings'

@description('DEFAULT_PHONE_REGION: ISO country for numbers written without a country code.')
param defaultPhoneRegion string = 'US'

@secure()
@description('HMAC secret for /api/webhooks/calls. Written to Key Vault as webhook-secret when given (the app then treats webhooks as in use); never to an app setting or output.')
param webhookSecret string = ''

@description('WEBHOOK_REQUIRE_TIMESTAMP: accept only timestamped webhook signatures.')
param webhookRequireTimestamp bool = false

// ---- Calling policy (docs/compliance.md): parameters, so `azd provision` keeps them (it writes every setting the template sets) ----

@description('CALLING_HOURS: HH:MM-HH:MM in the callee\'s local time, or off. Empty: the app\'s default, 08:00-21:00.')
param callingHours string = ''

@description('CALLING_HOURS_BY_COUNTRY: per-country windows, such as US=08:00-21:00;GB=09:00-20:00;FR=off.')
param callingHoursByCountry string = ''

@description('ALLOWED_COUNTRIES: comma-separated ISO countries calls may go to. Empty: any.')
param allowedCountries string = ''

@description('CALLS_PER_NUMBER_LIMIT: most calls to one number per window (1 to 500). Empty: no cap.')
param callsPerNumberLimit string = ''

@description('CALLS_PER_NUMBER_WINDOW_HOURS: the cap\'s window in hours. Empty: 24.')
param callsPerNumberWindowHours string = ''

@description('DO_NOT_CALL_TABLE: the do-not-call list\'s table. Empty: donotcall.')
param doNotCallTable string = ''

// ---- Scale (docs/deploy.md "Scale settings") ----

@description('Flex Consumption instance memory. 2048 MB: the app is I/O-bound (Genesys, Key Vault, Table Storage).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances each per-function scale group (the HTTP functions together; each other trigger alone) scales out to: it bounds bursts against the Genesys rate limit of one client-credentials token. Flex Consumption takes 1 to 1000.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Most HTTP requests an instance is sent at once. Each holds one of the 32 worker threads (PYTHON_THREADPOOL_THREAD_COUNT) until its function returns, also after the host gave up on it: 16 leaves threads for those.')
@minValue(1)
@maxValue(32)
param httpPerInstanceConcurrency int = 16

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = !empty(apiServiceName) ? apiServiceName : '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
var vaultName = !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${resourceToken}'
var virtualNetworkName = !empty(vNetName) ? vNetName : '${abbrs.networkVirtualNetworks}${resourceToken}'
var genesysClientSecretName = 'genesys-client-secret'
var webhookSecretName = 'webhook-secret'

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The one identity the app uses for everything: deployment storage, host storage, Key Vault, Application Insights.
module apiUserAssignedIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    location: location
    tags: tags
    name: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.name
    appServicePlanId: appServicePlan.outputs.resourceId
    runtimeName: 'python'
    runtimeVersion: '3.11'
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    identityId: apiUserAssignedIdentity.outputs.resourceId
    identityClientId: apiUserAssignedIdentity.outputs.clientId
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    // The app's own settings. Secrets are not here: the app reads them from the vault (KEY_VAULT_URL).
    appSettings: {
      GENESYS_REGION: genesysRegion
      GENESYS_CLIENT_ID: genesysClientId
      KEY_VAULT_URL: keyVault.outputs.uri
      GENESYS_CLIENT_SECRET_NAME: genesysClientSecretName
      GENESYS_CALL_USER_ID: genesysCallUserId
      ALLOWED_USER_IDS: allowedUserIds
      ALLOWED_QUEUE_IDS: allowedQueueIds
      DEFAULT_CALLER_ID: defaultCallerId
      ALLOWED_CALLER_IDS: allowedCallerIds
      CALLER_ID_SOURCE: callerIdSource
      DEFAULT_PHONE_REGION: defaultPhoneRegion
      WEBHOOK_REQUIRE_TIMESTAMP: webhookRequireTimestamp ? 'true' : 'false'
      CALLING_HOURS: callingHours
      CALLING_HOURS_BY_COUNTRY: callingHoursByCountry
      ALLOWED_COUNTRIES: allowedCountries
      CALLS_PER_NUMBER_LIMIT: callsPerNumberLimit
      CALLS_PER_NUMBER_WINDOW_HOURS: callsPerNumberWindowHours
      DO_NOT_CALL_TABLE: doNotCallTable
    }
    virtualNetworkSubnetId: vnetEnabled ? serviceVirtualNetwork.outputs.appSubnetID : ''
  }
}

// Host storage (AzureWebJobsStorage: blobs, the call-requests queue, the idempotency table) and the deployment
// package container. Shared keys off: every client, the host's included, signs in with the identity.
module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    dnsEndpointType: 'Standard'
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: vnetEnabled ? {
      defaultAction: 'Deny'
      bypass: 'None'
    } : {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [{ name: deploymentStorageContainerName }]
    }
    minimumTlsVersion: 'TLS1_2'
    location: location
    tags: tags
  }
}

// The Genesys client secret (and the webhook secret) live here. RBAC mode: no access policies; soft delete and
// purge protection: a deleted secret or vault can be recovered for softDeleteRetentionInDays, never purged early.
module keyVault 'br/public:avm/res/key-vault/vault:0.13.3' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: vaultName
    location: location
    tags: tags
    sku: 'standard'
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    enableVaultForDeployment: false
    enableVaultForDiskEncryption: false
    enableVaultForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: vnetEnabled ? {
      defaultAction: 'Deny'
      bypass: 'AzureServices'
    } : {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Secret values go only to these modules (their value parameter is @secure()). Without a value the module is not
// deployed and the vault's secret stays as it is (rotation, docs/deploy.md).
module genesysSecret './app/keyvault-secret.bicep' = if (!empty(genesysClientSecret)) {
  name: 'genesysClientSecret'
  scope: rg
  params: {
    keyVaultName: keyVault.outputs.name
    secretName: genesysClientSecretName
    secretValue: genesysClientSecret
  }
}

module webhookSecretModule './app/keyvault-secret.bicep' = if (!empty(webhookSecret)) {
  name: 'webhookSecret'
  scope: rg
  params: {
    keyVaultName: keyVault.outputs.name
    secretName: webhookSecretName
    secretValue: webhookSecret
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.name
    keyVaultName: keyVault.outputs.name
    managedIdentityPrincipalId: apiUserAssignedIdentity.outputs.principalId
    userIdentityPrincipalId: principalId
    userIdentityPrincipalType: principalType
  }
}

module serviceVirtualNetwork './app/vnet.bicep' = if (vnetEnabled) {
  name: 'serviceVirtualNetwork'
  scope: rg
  params: {
    location: location
    tags: tags
    vNetName: virtualNetworkName
  }
}

module privateEndpoints './app/storage-PrivateEndpoint.bicep' = if (vnetEnabled) {
  name: 'servicePrivateEndpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    virtualNetworkName: virtualNetworkName
    subnetName: vnetEnabled ? serviceVirtualNetwork.outputs.peSubnetName : ''
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.7.0' = {
  name: '${uniqueString(deployment().name, location)}-loganalytics'
  scope: rg
  params: {
    name: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

// Entra-only ingestion (disableLocalAuth): the app authenticates with the identity
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING) and the Monitoring Metrics Publisher role.
module monitoring 'br/public:avm/res/insights/component:0.4.1' = {
  name: '${uniqueString(deployment().name, location)}-appinsights'
  scope: rg
  params: {
    name: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true
  }
}

// Outputs (azd stores them in the environment; infra/hooks/postprovision.* read them). No secret here.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_FUNCTION_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_HOST string = api.outputs.SERVICE_API_HOST
output SERVICE_API_URI string = 'https://${api.outputs.SERVICE_API_HOST}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = apiUserAssignedIdentity.outputs.clientId
