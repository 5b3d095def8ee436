// One Key Vault secret. Its value arrives only as a @secure() parameter and goes only into the vault: never
// into an app setting, a deployment output or a log. main.bicep deploys this module only when a value is given,
// so a secret rotated with `az keyvault secret set` is not overwritten by a later `azd provision` that no longer
// carries it (docs/deploy.md "Rotating secrets").
param keyVaultName string
param secretName string

@secure()
param secretValue string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:Rotated by hand (in Genesys, or with the webhook senders), then in the vault; an expiry date would silently stop every call or delivery. The app re-reads the Genesys secret on invalid_client.
  parent: vault
  name: secretName
  properties: {
    value: secretValue
    contentType: 'text/plain'
  }
}
