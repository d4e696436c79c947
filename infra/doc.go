// Package infra holds the Bicep that `azd up` deploys (main.bicep and its
// modules) and no production code. Its test, consistency_test.go, stands in
// for the Bicep CLI, which cannot run where Coffer is built: it reads the
// Bicep as text and checks it against the code (every app setting the
// control plane reads, every table and queue it uses, the role definition
// IDs, the function folders and their routes, the paths App Service
// Authentication leaves to the handler, and the folder azure.yaml deploys).
package infra
