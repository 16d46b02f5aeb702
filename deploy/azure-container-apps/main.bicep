// mlgate serve on Azure Container Apps: stateless replicas over one storage account's queue and table.
//
// What it creates: a user-assigned managed identity with exactly three role assignments
// (Storage Queue Data Contributor and Storage Table Data Contributor on the storage account,
// Key Vault Secrets User on the vault), the queue and the table, a Container Apps environment
// and the app. The storage account and the Key Vault (RBAC authorization) already exist; the
// vault holds the secrets named below. The replicas read the secrets at start-up with that
// identity (mlgate's secrets layer); none is stored in the app's configuration.
//
//   az deployment group create -g RG -f main.bicep -p storageAccountName=... keyVaultName=... \
//     image=REGISTRY/mlgate-serve:TAG releasePolicy=@release-policy.yaml mlflowTrackingUri=...

@description('Name prefix of the resources this template creates.')
param name string = 'mlgate'

param location string = resourceGroup().location

@description('The mlgate-serve image (built from the repository Dockerfile), pinned by digest or tag.')
param image string

@description('An existing storage account (in this resource group) for the queue and the table.')
param storageAccountName string

@description('An existing Key Vault (in this resource group, RBAC authorization) holding the service secrets.')
param keyVaultName string

@description('The release policy YAML the replicas evaluate (mounted as /etc/mlgate/release-policy.yaml).')
param releasePolicy string

param mlflowTrackingUri string

@description('The public https URL of the service (for the "full evidence" links); empty: no links.')
param publicUrl string = ''

@description('Key Vault secret with the Azure DevOps check shared key; empty: the check is off.')
param azureDevOpsKeySecretName string = 'mlgate-azure-devops-key'

@description('During a rotation: the Key Vault secret with the previous shared key (else empty).')
param azureDevOpsKeyPreviousSecretName string = ''

@description('GitHub App id; empty: the GitHub protection rule is off.')
param githubAppId string = ''
param githubPrivateKeySecretName string = 'mlgate-github-private-key'
param githubWebhookSecretName string = 'mlgate-github-webhook-secret'

@description('During a rotation: the Key Vault secret with the previous webhook secret (else empty).')
param githubWebhookSecretPreviousSecretName string = ''

param queueName string = 'mlgate-checks'
param tableName string = 'mlgatechecks'

@minValue(1)
param minReplicas int = 2
param maxReplicas int = 10

// Built-in role definitions (their ids are the same in every tenant).
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource table 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tableName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${name}-identity'
  location: location
}

resource queueRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, storageQueueDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, storageTableDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, identity.id, keyVaultSecretsUser)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${name}-env'
  location: location
  properties: {}
}

var baseSettings = [
  { name: 'MLGATE_SERVE_POLICY', value: '/etc/mlgate/release-policy.yaml' }
  { name: 'MLFLOW_TRACKING_URI', value: mlflowTrackingUri }
  { name: 'MLGATE_SERVE_STATE', value: 'azure-storage' }
  { name: 'MLGATE_SERVE_STATE_STORAGE_ACCOUNT', value: storage.name }
  { name: 'MLGATE_SERVE_STATE_QUEUE', value: queue.name }
  { name: 'MLGATE_SERVE_STATE_TABLE', value: table.name }
  { name: 'MLGATE_SERVE_STATE_IDENTITY', value: 'managed' }
  { name: 'MLGATE_SERVE_STATE_CLIENT_ID', value: identity.properties.clientId }
  { name: 'MLGATE_SERVE_KEY_VAULT', value: vault.properties.vaultUri }
  { name: 'MLGATE_SERVE_KEY_VAULT_IDENTITY', value: 'managed' }
  { name: 'MLGATE_SERVE_KEY_VAULT_CLIENT_ID', value: identity.properties.clientId }
]
var publicUrlSettings = empty(publicUrl) ? [] : [{ name: 'MLGATE_SERVE_PUBLIC_URL', value: publicUrl }]
var azureDevOpsSettings = empty(azureDevOpsKeySecretName) ? [] : [
  { name: 'MLGATE_SERVE_AZURE_DEVOPS_KEY_SECRET_NAME', value: azureDevOpsKeySecretName }
]
var azureDevOpsRotation = empty(azureDevOpsKeyPreviousSecretName) ? [] : [
  { name: 'MLGATE_SERVE_AZURE_DEVOPS_KEY_PREVIOUS_SECRET_NAME', value: azureDevOpsKeyPreviousSecretName }
]
var githubSettings = empty(githubAppId) ? [] : [
  { name: 'MLGATE_SERVE_GITHUB_APP_ID', value: githubAppId }
  { name: 'MLGATE_SERVE_GITHUB_PRIVATE_KEY_SECRET_NAME', value: githubPrivateKeySecretName }
  { name: 'MLGATE_SERVE_GITHUB_WEBHOOK_SECRET_SECRET_NAME', value: githubWebhookSecretName }
]
var githubRotation = empty(githubWebhookSecretPreviousSecretName) ? [] : [
  { name: 'MLGATE_SERVE_GITHUB_WEBHOOK_SECRET_PREVIOUS_SECRET_NAME', value: githubWebhookSecretPreviousSecretName }
]

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  dependsOn: [
    queueRole
    tableRole
    secretsRole
  ]
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 8080
        transport: 'http'
        allowInsecure: false
      }
      secrets: [
        { name: 'release-policy', value: releasePolicy }
      ]
    }
    template: {
      containers: [
        {
          name: 'mlgate'
          image: image
          resources: { cpu: json('0.5'), memory: '1Gi' }
          env: concat(baseSettings, publicUrlSettings, azureDevOpsSettings, azureDevOpsRotation, githubSettings, githubRotation)
          volumeMounts: [
            { volumeName: 'policy', mountPath: '/etc/mlgate' }
          ]
          probes: [
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 30 }
            { type: 'Readiness', httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10 }
          ]
        }
      ]
      volumes: [
        {
          name: 'policy'
          storageType: 'Secret'
          secrets: [
            { secretRef: 'release-policy', path: 'release-policy.yaml' }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          { name: 'http', http: { metadata: { concurrentRequests: '50' } } }
        ]
      }
    }
  }
}

output url string = 'https://${app.properties.configuration.ingress.fqdn}'
output identityClientId string = identity.properties.clientId
