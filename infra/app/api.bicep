// The function app on the Flex Consumption plan, after the quickstart's infra/app/api.bicep: identity-based
// host storage for all three services the app uses (blob: host and deployment; queue: asynchronous mode;
// table: idempotency), Entra-authenticated Application Insights, and the app's own settings from main.bicep.
param name string
param location string = resourceGroup().location
param tags object = {}
param applicationInsightsName string
param appServicePlanId string
@description('The app\'s own settings (no secret values: the app reads secrets from Key Vault).')
param appSettings object = {}
param runtimeName string
param runtimeVersion string
param serviceName string = 'api'
param storageAccountName string
param deploymentStorageContainerName string
param virtualNetworkSubnetId string = ''
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40
param httpPerInstanceConcurrency int
param identityId string
param identityClientId string

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Settings the platform and the SDKs read. The storage settings are the identity-based form of
// AzureWebJobsStorage (no account key anywhere); AZURE_CLIENT_ID makes the app's managed identity credential
// (Key Vault) pick the user-assigned identity.
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The connection string holds the instrumentation key, an identifier, not a credential: with
  // disableLocalAuth the component accepts only Entra-authenticated telemetry.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  // Sync handlers run on this pool; the worker's default is min(32, cores + 4), 6 threads on 2 cores. A request
  // waiting up to IDEMPOTENCY_WAIT_SECONDS for a same-key claim holds a thread (docs/deploy.md "Scale settings").
  PYTHON_THREADPOOL_THREAD_COUNT: '32'
  // The host reads a whole body (100 MB by default) before any function sees it, anonymous routes too, and answers
  // one over this limit 500, which senders retry (azure-functions-host#10519). 4 MiB is above what Event Grid (1 MB)
  // and SNS (256 KB) send, so their deliveries reach the routes' own limits (at most 1 MiB), whose 413 is not retried.
  FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: '4194304'
}

module api 'br/public:avm/res/web/site:0.15.1' = {
  name: '${serviceName}-flex-consumption'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': serviceName })
    serverFarmResourceId: appServicePlanId
    httpsOnly: true
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [
        identityId
      ]
    }
    // @Microsoft.KeyVault(...) references resolve with the system-assigned identity unless told otherwise, and this
    // site has none: without this line every reference would stay unresolved text (configuration_error).
    keyVaultAccessIdentityResourceId: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        // Set, not left to the platform, whose default depends on the language and memory size: requests an
        // instance is sent each hold one of the PYTHON_THREADPOOL_THREAD_COUNT threads (docs/deploy.md).
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
    // No ftpsState: Flex Consumption offers no FTP, and newer regions refuse the property, failing the deployment.
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
    }
    virtualNetworkSubnetId: !empty(virtualNetworkSubnetId) ? virtualNetworkSubnetId : null
    // Platform settings last: an appSettings entry cannot override the identity and storage wiring.
    appSettingsKeyValuePairs: union(appSettings, platformSettings)
  }
}

output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_HOST string = api.outputs.defaultHostname
