// Optional (vnetEnabled): a virtual network with a subnet for private endpoints and a subnet delegated to
// Flex Consumption's virtual network integration, after the quickstart's infra/app/vnet.bicep.
@description('Name of the virtual network.')
param vNetName string

param location string = resourceGroup().location

@description('Subnet for the storage and Key Vault private endpoints.')
param peSubnetName string = 'private-endpoints-subnet'

@description('Subnet for the function app\'s virtual network integration.')
param appSubnetName string = 'app'

param tags object = {}

resource virtualNetwork 'Microsoft.Network/virtualNetworks@2023-05-01' = {
  name: vNetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        '10.0.0.0/16'
      ]
    }
    subnets: [
      {
        name: peSubnetName
        properties: {
          addressPrefixes: [
            '10.0.1.0/24'
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
      {
        name: appSubnetName
        properties: {
          addressPrefixes: [
            '10.0.2.0/24'
          ]
          delegations: [
            {
              name: 'delegation'
              properties: {
                // Flex Consumption's virtual network integration delegates to Microsoft.App/environments.
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
    ]
    enableDdosProtection: false
  }
}

output peSubnetName string = virtualNetwork.properties.subnets[0].name
output peSubnetID string = virtualNetwork.properties.subnets[0].id
output appSubnetName string = virtualNetwork.properties.subnets[1].name
output appSubnetID string = virtualNetwork.properties.subnets[1].id
