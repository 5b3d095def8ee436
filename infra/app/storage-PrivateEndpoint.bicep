// Optional (vnetEnabled): private endpoints and private DNS zones for the storage account's blob, queue and
// table services and for the Key Vault, after the quickstart's infra/app/storage-PrivateEndpoint.bicep (which
// covers blob only). The app uses all three storage services and the vault, so all four get an endpoint.
param virtualNetworkName string
param subnetName string
param storageAccountName string
param keyVaultName string
param location string = resourceGroup().location
param tags object = {}

resource vnet 'Microsoft.Network/virtualNetworks@2023-05-01' existing = {
  name: virtualNetworkName
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

var targets = [
  {
    group: 'blob'
    zone: 'privatelink.blob.${environment().suffixes.storage}'
    resourceId: storageAccount.id
  }
  {
    group: 'queue'
    zone: 'privatelink.queue.${environment().suffixes.storage}'
    resourceId: storageAccount.id
  }
  {
    group: 'table'
    zone: 'privatelink.table.${environment().suffixes.storage}'
    resourceId: storageAccount.id
  }
  {
    group: 'vault'
    zone: 'privatelink.vaultcore.azure.net'
    resourceId: vault.id
  }
]

resource privateDnsZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for target in targets: {
    name: target.zone
    location: 'global'
    tags: tags
    properties: {}
  }
]

resource privateDnsZoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (target, i) in targets: {
    parent: privateDnsZones[i]
    name: '${target.group}-link-${take(toLower(uniqueString(target.resourceId, virtualNetworkName)), 4)}'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2023-05-01' = [
  for target in targets: {
    name: 'pep-${target.group}-${take(toLower(uniqueString(target.resourceId)), 6)}'
    location: location
    tags: tags
    properties: {
      privateLinkServiceConnections: [
        {
          name: '${target.group}PrivateLinkConnection'
          properties: {
            privateLinkServiceId: target.resourceId
            groupIds: [
              target.group
            ]
          }
        }
      ]
      subnet: {
        id: '${vnet.id}/subnets/${subnetName}'
      }
    }
  }
]

resource privateDnsZoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-05-01' = [
  for (target, i) in targets: {
    parent: privateEndpoints[i]
    name: '${target.group}PrivateDnsZoneGroup'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: '${target.group}ARecord'
          properties: {
            privateDnsZoneId: privateDnsZones[i].id
          }
        }
      ]
    }
  }
]
